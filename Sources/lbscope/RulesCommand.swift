import ArgumentParser
import LBAnalysis
import LBCore
import LBReport
import LBRules

extension RulesFormat: ExpressibleByArgument {}

struct RulesCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "rules",
    abstract:
      "Decode kube-proxy's datapath: services, frontends, backends with their chances, affinity, pinned clients.",
    discussion: """
      Reads `iptables-save -c` (or `iptables -t nat -S`) dumps and /proc/net/xt_recent lists
      (files or a collected xt_recent/ directory); the format of each input is detected.

        lbscope rules iptables-save.txt xt_recent/
        lbscope rules iptables-save.txt --trace 203.0.113.7:40000 10.96.0.10:80
      """
  )

  @Argument(
    help: ArgumentHelp("Rules dumps or xt_recent lists/directories; - for standard input.", valueName: "FILE")
  )
  var files: [String] = []

  @Option(help: ArgumentHelp("Read every input as this format instead of detecting it.", valueName: "FORMAT"))
  var inputFormat: RulesFormat?

  @Option(
    help: ArgumentHelp("The node's jiffies when xt_recent was read (/proc/timer_list).", valueName: "N"))
  var jiffies: UInt64?

  @Option(help: ArgumentHelp("The node's CONFIG_HZ, for xt_recent ages.", valueName: "N"))
  var hz: Int?

  @Option(
    parsing: .upToNextOption,
    help: ArgumentHelp("Walk one packet through the iptables rules.", valueName: "SRC:PORT DST:PORT"))
  var trace: [String] = []

  @Option(
    help: ArgumentHelp(
      "A local address of the node (for --trace: `--dst-type LOCAL`, NodePorts).", valueName: "IP"))
  var nodeIP: [String] = []

  @Option(help: ArgumentHelp("Protocol of the traced packet.", valueName: "tcp|udp|sctp"))
  var traceProtocol: String = "tcp"

  @OptionGroup var report: ReportOptions

  func validate() throws {
    if files.isEmpty { throw ValidationError("give at least one FILE, or - for standard input") }
    if files.filter({ $0 == "-" }).count > 1 {
      throw ValidationError("standard input (-) can be read only once")
    }
    if (jiffies == nil) != (hz == nil) { throw ValidationError("--jiffies and --hz go together") }
    if let hz, hz <= 0 { throw ValidationError("--hz must be positive") }
    if !trace.isEmpty {
      guard trace.count == 2, Endpoint(trace[0]) != nil, Endpoint(trace[1]) != nil else {
        throw ValidationError("--trace wants SRC:PORT DST:PORT (IPv6 as [ADDR]:PORT)")
      }
    }
    for ip in nodeIP where IPAddress(ip) == nil {
      throw ValidationError("--node-ip wants an address, not '\(ip)'")
    }
    guard ["tcp", "udp", "sctp"].contains(traceProtocol) else {
      throw ValidationError("--trace-protocol is tcp, udp or sctp")
    }
  }

  func run() throws {
    Interrupt.install(output: report.output)
    var options = RulesReadOptions(keepIptablesDumps: !trace.isEmpty)
    if let jiffies, let hz { options.clock = JiffiesClock(jiffies: jiffies, hz: hz) }
    let read: RulesReadResult
    do {
      read = try RulesReader.read(paths: files, formats: files.map { _ in inputFormat }, options: options)
    } catch {
      Failure(error).exit()
    }
    var packetTrace: PacketTrace?
    if trace.count == 2, let source = Endpoint(trace[0]), let destination = Endpoint(trace[1]) {
      let proto: TransportProtocol = traceProtocol == "udp" ? .udp : traceProtocol == "sctp" ? .sctp : .tcp
      let lists = RulesReader.recentLists(read.ruleSet)
      if let dump = read.iptablesDumps.first {
        let walker = IptablesTrace(
          dump: dump, localAddresses: nodeIP.compactMap(IPAddress.init), recentLists: lists)
        packetTrace = walker.trace(source: source, destination: destination, proto: proto)
      } else {
        Failure(usage: "--trace needs an iptables-save input").exit()
      }
    }
    let result = RulesAnalyzer.analyze(
      read.ruleSet, options: report.analysisOptions, trace: packetTrace, clockSource: read.clockSource)
    try Output.writeRules(result, options: report)
  }
}
