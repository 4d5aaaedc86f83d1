import ArgumentParser
import LBAnalysis
import LBBundle
import LBConntrack
import LBCore
import LBLive

struct ConntrackCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "conntrack",
    abstract: "Analyse conntrack tables and events: clients, backends, stickiness, SNAT.",
    discussion: """
      Reads `conntrack -L` (plain, -o extended, -o xml), /proc/net/nf_conntrack and
      `conntrack -E` events, from files or standard input (`-`):

        ssh node sudo conntrack -L | lbscope conntrack -

      On the node, --live reads the kernel's table over netlink instead (IPv4 and IPv6; needs
      CAP_NET_ADMIN, exit 77 without it):

        sudo lbscope conntrack --live --dst 10.96.0.10:80
      """
  )

  @Argument(
    help: ArgumentHelp(
      "Conntrack dumps or event logs, bundles (directory or .tar.gz from lbscope collect); - for standard input.",
      valueName: "FILE"))
  var files: [String] = []

  @OptionGroup var live: LiveConntrackOptions

  @OptionGroup var report: ReportOptions

  func validate() throws {
    if files.isEmpty && !live.live {
      throw ValidationError("give at least one FILE, - for standard input, or --live")
    }
    if !live.live && !live.filter.isEmpty {
      throw ValidationError("--zone, --mark and --dst filter the live table: add --live")
    }
    if files.filter({ $0 == "-" }).count > 1 {
      throw ValidationError("standard input (-) can be read only once")
    }
  }

  func run() throws {
    Interrupt.install(output: report.output)
    var analyzer = ConnectionAnalyzer(options: report.analysisOptions)
    var summaries: [InputSummary] = []
    let reader = ConntrackReader()
    if live.live {
      summaries.append(LiveConntrackOptions.read(filter: live.filter, input: 0) { analyzer.add($0) })
    }
    for path in files {
      do {
        if path != "-" && Bundle.isBundle(path) {
          let bundle = try Bundle.open(path)
          let inside = bundle.files(of: [.conntrack, .conntrackEvents])
          if inside.isEmpty {
            throw BundleError(
              path: path, reason: "the bundle holds no conntrack table",
              hint: "its manifest.json says why (collect needs CAP_NET_ADMIN for the table)",
              category: .unrecognizedInput)
          }
          for file in inside {
            var summary = try reader.read(path: file.path, input: summaries.count, into: &analyzer)
            summary.path = path + "/" + file.name
            summaries.append(summary)
          }
          continue
        }
        let summary = try reader.read(path: path, input: summaries.count, into: &analyzer)
        summaries.append(summary)
      } catch let error as any LocatedError {
        Failure(error).exit()
      }
    }
    let result = analyzer.finish(inputs: summaries)
    LeftForExit.keep(result)
    analyzer = ConnectionAnalyzer(options: report.analysisOptions)  // its tables are not needed now
    try Output.write(result, options: report)
  }
}
