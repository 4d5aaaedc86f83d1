import ArgumentParser
import LBBundle
import LBCollect
import LBCore
import SystemPackage

struct CollectCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "collect",
    abstract: "Snapshot this node's datapath state into a bundle for offline analysis.",
    discussion: """
      Saves iptables-save -c (iptables, ip6tables; legacy and nft backends when both hold
      rules), nft list ruleset, ipvsadm -S -n / -Ln --stats --exact / -Lnc, the conntrack table
      (over netlink, as `conntrack -L` text), /proc/net/xt_recent/*, jiffies and HZ, conntrack
      statistics, kernel and tool versions, links and addresses, and with --capture-seconds a
      short capture on `any` (capture/*.pcapng). Nothing on the node changes.

      Tools run with fixed arguments (never a shell), each within --timeout; what is missing,
      denied or killed is recorded in manifest.json and the rest goes on. Writes DIR and
      DIR.tar.gz beside it; both can be given to `lbscope conntrack`:

        sudo lbscope collect --output /tmp/node-a && scp node-a:/tmp/node-a.tar.gz .
        lbscope conntrack node-a.tar.gz
      """
  )

  @Option(name: .shortAndLong, help: ArgumentHelp("The bundle directory to create.", valueName: "DIR"))
  var output: String

  @Option(help: ArgumentHelp("Seconds each tool may run before it is killed.", valueName: "S"))
  var timeout: Int = 120

  @Option(
    help: ArgumentHelp(
      "Also capture this many seconds of traffic on `any` into capture/*.pcapng (needs CAP_NET_RAW).",
      valueName: "S"))
  var captureSeconds: Double?

  func validate() throws {
    guard timeout > 0 && timeout <= 3600 else { throw ValidationError("--timeout must be 1…3600 seconds") }
    if let captureSeconds, !(captureSeconds > 0 && captureSeconds <= 3600) {
      throw ValidationError("--capture-seconds must be 1…3600 seconds")
    }
  }

  func run() throws {
    Interrupt.install(output: output)
    let options = CollectOptions(
      output: output, timeout: .seconds(timeout), toolVersion: LBScope.version, captureSeconds: captureSeconds
    )
    let result: CollectResult
    do {
      result = try Collector.collect(options) { FileDescriptor.standardError.writeLine($0) }
    } catch {
      Failure(error).exit()
    }
    let items = result.manifest.items
    let written = items.filter { $0.file != nil }.count
    var text = "\(result.directory): \(written) files; \(result.archive)\n"
    let missing = items.filter { $0.error != nil }
    if !missing.isEmpty {
      text += "\(missing.count) item(s) missing or incomplete (see manifest.json):\n"
      for item in missing {
        let what = item.argv?.joined(separator: " ") ?? item.source ?? item.kind
        text += "  \(what): \(item.error ?? "")\n"
      }
    }
    _ = try? FileDescriptor.standardOutput.writeAll(text.utf8)
  }
}
