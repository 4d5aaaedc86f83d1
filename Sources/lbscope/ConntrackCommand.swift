import ArgumentParser
import LBAnalysis
import LBConntrack
import LBCore

struct ConntrackCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "conntrack",
    abstract: "Analyse conntrack tables and events: clients, backends, stickiness, SNAT.",
    discussion: """
      Reads `conntrack -L` (plain, -o extended, -o xml), /proc/net/nf_conntrack and
      `conntrack -E` events, from files or standard input (`-`):

        ssh node sudo conntrack -L | lbscope conntrack -
      """
  )

  @Argument(help: ArgumentHelp("Conntrack dumps or event logs; - for standard input.", valueName: "FILE"))
  var files: [String] = []

  @OptionGroup var report: ReportOptions

  func validate() throws {
    if files.isEmpty { throw ValidationError("give at least one FILE, or - for standard input") }
    if files.filter({ $0 == "-" }).count > 1 {
      throw ValidationError("standard input (-) can be read only once")
    }
  }

  func run() throws {
    var analyzer = ConnectionAnalyzer(options: report.analysisOptions)
    var summaries: [InputSummary] = []
    let reader = ConntrackReader()
    for (index, path) in files.enumerated() {
      do {
        let summary = try reader.read(path: path, input: index, into: &analyzer)
        summaries.append(summary)
      } catch {
        Failure(error).exit()
      }
    }
    let result = analyzer.finish(inputs: summaries)
    analyzer = ConnectionAnalyzer(options: report.analysisOptions)  // its tables are not needed now
    try Output.write(result, options: report)
  }
}
