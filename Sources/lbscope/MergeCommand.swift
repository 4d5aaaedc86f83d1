import ArgumentParser
import LBAnalysis
import LBCore
import LBReport
import SystemPackage

struct MergeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "merge",
    abstract: "Join the JSON reports of several nodes into one cluster-wide report.",
    discussion: """
      Each REPORT.json is what `lbscope … --format json` wrote on one node; the node is named by
      the report's `node` field, else by its file name (node-a.json → node-a). The same service
      seen from several nodes (same name, or a shared frontend) gets summed backend counts, a
      per-node breakdown and a fresh verdict; findings that need every node, such as one node
      taking most of a service's traffic (node-traffic-skew), are added.

        lbscope merge node-a.json node-b.json node-c.json -o cluster.md
      """
  )

  @Argument(help: ArgumentHelp("JSON reports of single nodes.", valueName: "REPORT.json"))
  var reports: [String] = []

  @OptionGroup var report: ReportOptions

  /// A report larger than this is refused rather than read into memory.
  static let maximumReportSize = 512 << 20

  func validate() throws {
    if reports.isEmpty { throw ValidationError("give at least one REPORT.json") }
  }

  func run() throws {
    Interrupt.install(output: report.output)
    var nodes: [NodeReport] = []
    for path in reports {
      do {
        let bytes = try ReportFile.read(path, limit: Self.maximumReportSize)
        let node = try ReportReader(path: path).read(bytes)
        if let twin = nodes.first(where: { $0.node == node.node }) {
          throw ReportFile.Failure(
            path: path, reason: "names node '\(node.node)' like \(twin.path)",
            hint: "give each node's report its own file name", category: .usage)
        }
        nodes.append(node)
      } catch let error as any LocatedError {
        Failure(error).exit()
      }
    }
    let cluster = ClusterMerger(options: report.analysisOptions).merge(nodes)
    try Output.write(cluster, options: report)
  }
}

/// Reads a whole, size-limited file (or standard input for `-`).
enum ReportFile {
  struct Failure: LocatedError {
    var path: String?
    var line: Int? { nil }
    var reason: String
    var hint: String
    var category: FailureCategory
  }

  static func read(_ path: String, limit: Int) throws(Failure) -> [UInt8] {
    let fd: FileDescriptor
    do {
      fd = path == "-" ? .standardInput : try FileDescriptor.open(FilePath(path), .readOnly)
    } catch {
      throw Failure(
        path: path, reason: "cannot open: \(error)", hint: "check the path", category: .unreadableInput)
    }
    defer { if path != "-" { try? fd.close() } }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
      let count: Int
      do {
        count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
      } catch {
        throw Failure(
          path: path, reason: "cannot read: \(error)", hint: "give a regular file of JSON",
          category: .unreadableInput)
      }
      if count == 0 { return bytes }
      bytes += buffer[0..<count]
      if bytes.count > limit {
        throw Failure(
          path: path, reason: "is larger than \(limit) bytes",
          hint: "give a report made with a smaller --json-clients",
          category: .unrecognizedInput)
      }
    }
  }
}
