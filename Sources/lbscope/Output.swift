import ArgumentParser
import CTuning
import LBAnalysis
import LBCore
import LBReport
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// A failure with its documented exit code, printed as one line.
struct Failure: Error, CustomStringConvertible {
  var message: String
  var code: Int32

  init(_ error: any LocatedError) {
    message = error.description
    code = Failure.exitCode(for: error.category)
  }

  var description: String { message }

  static let findings: Int32 = 1
  static let usage: Int32 = 64
  static let damagedInput: Int32 = 65
  static let unreadableInput: Int32 = 66
  static let cannotWrite: Int32 = 73
  static let missingPrivilege: Int32 = 77

  static func exitCode(for category: FailureCategory) -> Int32 {
    switch category {
    case .unreadableInput, .unrecognizedInput: unreadableInput
    case .missingPrivilege: missingPrivilege
    case .unwritableOutput: cannotWrite
    case .usage: usage
    }
  }
}

extension Failure {
  /// Prints `lbscope: message` on standard error, removes the scratch files and directories of
  /// the run (an archive extracted into /tmp, a report's temporary name) and exits with the code.
  func exit() -> Never {
    InterruptCleanup.withLockedState { Interrupt.removeScratch(&$0) }
    FileDescriptor.standardError.writeLine("lbscope: \(message)")
    Glibc.exit(code)
  }
}

extension FileDescriptor {
  func writeLine(_ text: String) {
    _ = try? writeAll((text + "\n").utf8)
  }
}

enum Output {
  /// Renders and writes the report, then exits with the code its inputs and findings call for.
  static func write(_ result: AnalysisResult, options: ReportOptions) throws {
    let tool = ToolInfo(version: LBScope.version)
    var anonymizer = options.anonymizer(names: ReportAnonymizer.names(in: result))
    let text: [[UInt8]]
    switch options.format {
    case .json:
      let document = JSONReport.document(result, tool: tool, maxClients: options.jsonClients)
      text = (anonymizer?.apply(document) ?? document).renderedPieces()
      LeftForExit.keep(document)
    case .markdown:
      let markdown = MarkdownReport(topClients: options.topClients).render(result, tool: tool)
      text = [Array((anonymizer?.apply(markdown: markdown) ?? markdown).utf8)]
    }
    LeftForExit.keep(text)
    try deliver(text, inputs: result.inputs, findings: result.findings, options: options)
  }

  /// Renders and writes a cluster report (`lbscope merge`), then exits as `write` does.
  static func write(_ cluster: ClusterResult, options: ReportOptions) throws {
    let tool = ToolInfo(version: LBScope.version)
    var anonymizer = options.anonymizer(
      names: ReportAnonymizer.names(in: cluster.result) + cluster.nodes.map(\.node))
    let text: [[UInt8]]
    switch options.format {
    case .json:
      let document = ClusterReport.document(cluster, tool: tool, maxClients: options.jsonClients)
      text = (anonymizer?.apply(document) ?? document).renderedPieces()
    case .markdown:
      let markdown = ClusterReport.markdown(cluster, tool: tool, topClients: options.topClients)
      text = [Array((anonymizer?.apply(markdown: markdown) ?? markdown).utf8)]
    }
    try deliver(text, inputs: cluster.result.inputs, findings: cluster.result.findings, options: options)
  }

  /// Writes a rendered report (in pieces, as `JSON.renderedPieces()` gives it, written one after
  /// the other), warns about damaged inputs, and exits with the code `--fail-on` and the inputs
  /// call for.
  static func deliver(_ text: [[UInt8]], inputs: [InputSummary], findings: [Finding], options: ReportOptions)
    throws
  {
    if let path = options.output {
      do {
        try AtomicFile.write(text, to: path, replace: options.force)
      } catch {
        Failure(error).exit()
      }
    } else {
      for piece in text { _ = try? FileDescriptor.standardOutput.writeAll(piece) }
    }

    let damaged = inputs.filter { $0.issueCount > 0 || $0.partial }
    for input in damaged {
      let first = input.examples.first.map { ":\($0.line): \($0.kind.rawValue): \($0.message)" } ?? ": "
      FileDescriptor.standardError.writeLine(
        "lbscope: \(input.path)\(first); \(input.issueCount) damaged record(s) skipped or recovered, the report covers the rest"
      )
    }
    let worst = findings.map(\.severity).min()
    switch options.failOn {
    case .critical where worst == .critical, .warning where worst.map({ $0 <= .warning }) == true:
      throw ExitCode(Failure.findings)
    default:
      break
    }
    if !damaged.isEmpty { throw ExitCode(Failure.damagedInput) }
  }
}

/// What a command has finished with at its end, freed by the process's exit instead of block by
/// block: a large report is tens of thousands of small allocations (each client's backend list,
/// the rendered pieces), and handing them back one at a time, with the allocator merging free
/// blocks, took about 10 ms at the end of a 250 ms run on the 1,000,000-entry benchmark.
/// Only for what lives until the command returns; the process exits right after.
enum LeftForExit {
  nonisolated(unsafe) private static var values: [Any] = []

  static func keep(_ value: Any) { values.append(value) }
}

/// Writes a file through a temporary name in the same directory and renames it into place, so a
/// reader sees the old file or the complete new one, never half of it.
enum AtomicFile {
  struct WriteError: LocatedError {
    var path: String?
    var line: Int? { nil }
    var reason: String
    var hint: String
    var category: FailureCategory { .unwritableOutput }
  }

  static func write(_ text: [UInt8], to path: String, replace: Bool) throws(WriteError) {
    try write([text], to: path, replace: replace)
  }

  /// Asks the kernel to start writing `count` bytes from `offset` to the disk, without waiting.
  static func startWriteback(_ fd: FileDescriptor, from offset: Int, count: Int) {
    lbscope_start_writeback(fd.rawValue, offset, count)
  }

  /// `write` for text in pieces, written one after the other.
  static func write(_ text: [[UInt8]], to path: String, replace: Bool) throws(WriteError) {
    var status = stat()
    if lstat(path, &status) == 0 {
      if (status.st_mode & S_IFMT) == S_IFDIR {
        throw WriteError(path: path, reason: "is a directory", hint: "name a file for --output")
      }
      if !replace {
        throw WriteError(path: path, reason: "already exists", hint: "add --force to replace it")
      }
    }
    let temporary = path + ".lbscope-tmp-\(getpid())"
    // Registered first: an interrupt (Interrupt.swift) removes it, whatever point it reached.
    InterruptCleanup.register(temporary, .file)
    do {
      let fd = try FileDescriptor.open(
        FilePath(temporary), .writeOnly, options: [.create, .exclusiveCreate, .truncate],
        permissions: [.ownerReadWrite, .groupRead, .otherRead])
      do {
        // Writeback starts behind the writing, every 4 MiB, so that most of a large report
        // is on its way to the disk when `fsync` waits for all of it (20 MB: 12 ms of waiting
        // became 4 ms).
        var written = 0
        var flushed = 0
        for piece in text {
          written += try fd.writeAll(piece)
          if written - flushed >= 4 << 20 {
            startWriteback(fd, from: flushed, count: written - flushed)
            flushed = written
          }
        }
        if fsync(fd.rawValue) != 0 { throw Errno(rawValue: errno) }
        try fd.close()
      } catch {
        try? fd.close()
        throw error
      }
      let renamed = InterruptCleanup.commit(temporary, as: path) { rename(temporary, path) == 0 ? 0 : errno }
      guard renamed == 0 else { throw Errno(rawValue: renamed) }
    } catch {
      _ = unlink(temporary)
      InterruptCleanup.unregister(temporary)
      throw WriteError(
        path: path, reason: "cannot write: \(error)", hint: "check the directory exists and is writable")
    }
  }
}

extension Failure {
  init(usage message: String) {
    self.message = message
    code = Failure.usage
  }
}

extension Output {
  /// Renders and writes the rules report, then exits with the code its inputs and findings
  /// call for (as `write` does for connection reports).
  static func writeRules(_ result: RulesResult, options: ReportOptions) throws {
    let tool = ToolInfo(version: LBScope.version)
    if options.output == nil && options.format == .json {
      // Large rule sets: stream the JSON to standard output in pieces of about 1 MiB.
      var pending = ""
      RulesReportJSON.render(result, tool: tool) { piece in
        pending += piece
        if pending.utf8.count >= 1 << 20 {
          _ = try? FileDescriptor.standardOutput.writeAll(pending.utf8)
          pending = ""
        }
      }
      _ = try? FileDescriptor.standardOutput.writeAll(pending.utf8)
    } else {
      let text: String
      switch options.format {
      case .json: text = RulesReportJSON.render(result, tool: tool)
      case .markdown: text = RulesReportMarkdown().render(result, tool: tool)
      }
      if let path = options.output {
        do {
          try AtomicFile.write(Array(text.utf8), to: path, replace: options.force)
        } catch {
          Failure(error).exit()
        }
      } else {
        _ = try? FileDescriptor.standardOutput.writeAll(text.utf8)
      }
    }
    let damaged = result.inputs.filter { $0.issueCount > 0 || $0.partial }
    for input in damaged {
      let first = input.examples.first.map { ":\($0.line): \($0.kind.rawValue): \($0.message)" } ?? ": "
      FileDescriptor.standardError.writeLine(
        "lbscope: \(input.path)\(first); \(input.issueCount) damaged line(s) skipped, the report covers the rest"
      )
    }
    let worst = result.findings.map(\.severity).min()
    switch options.failOn {
    case .critical where worst == .critical, .warning where worst.map({ $0 <= .warning }) == true:
      throw ExitCode(Failure.findings)
    default:
      break
    }
    if !damaged.isEmpty { throw ExitCode(Failure.damagedInput) }
  }
}
