import Foundation
import Testing

let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

/// The built `lbscope` beside the test bundle, or in `.build/debug`.
let binary: URL = {
  let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("lbscope")
  if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
  return repository.appendingPathComponent(".build/debug/lbscope")
}()

struct Run {
  var status: Int32
  var stdout: String
  var stderr: String
}

func lbscope(_ arguments: [String], stdin: Data? = nil) throws -> Run {
  try runProcess(binary, arguments, stdin: stdin)
}

/// Runs a program in the repository with its output captured; `environment` is added to ours.
func runProcess(
  _ executable: URL, _ arguments: [String], stdin: Data? = nil, environment: [String: String] = [:]
) throws -> Run {
  let process = Process()
  process.executableURL = executable
  process.arguments = arguments
  process.currentDirectoryURL = repository
  if !environment.isEmpty {
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
  }
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  let input = Pipe()
  process.standardInput = stdin == nil ? FileHandle.nullDevice : input
  try process.run()
  if let stdin {
    input.fileHandleForWriting.write(stdin)
    try input.fileHandleForWriting.close()
  }
  let outData = out.fileHandleForReading.readDataToEndOfFile()
  let errData = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return Run(
    status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
    stderr: String(decoding: errData, as: UTF8.self))
}

func temporaryPath(_ name: String) -> String {
  FileManager.default.temporaryDirectory.appendingPathComponent("lbscope-cli-\(UUID().uuidString)-\(name)")
    .path
}

/// One test per row of the README's exit-code table.
@Suite struct ExitCodeTests {
  @Test func succeedsWithZeroOnACleanDump() throws {
    let run = try lbscope(["conntrack", "captures/uniform/conntrack-L.txt"])
    #expect(run.status == 0)
    #expect(run.stdout.hasPrefix("# lbscope report"))
    #expect(run.stderr.isEmpty)
  }

  @Test func failOnWarningExitsOneWhenFindingsExist() throws {
    #expect(
      try lbscope(["conntrack", "captures/affinity-nat/conntrack-L.txt", "--fail-on", "warning"]).status == 1)
    #expect(
      try lbscope(["conntrack", "captures/uniform/conntrack-L.txt", "--fail-on", "warning"]).status == 0)
    #expect(
      try lbscope(["conntrack", "captures/affinity-nat/conntrack-L.txt", "--fail-on", "critical"]).status == 0
    )
  }

  @Test func usageErrorsExitSixtyFour() throws {
    #expect(try lbscope(["conntrack"]).status == 64)
    #expect(try lbscope(["conntrack", "x", "--service", "not-an-endpoint"]).status == 64)
    #expect(try lbscope(["conntrack", "x", "--format", "yaml"]).status == 64)
  }

  @Test func damagedInputExitsSixtyFiveAndStillReports() throws {
    let path = repository.deletingLastPathComponent().appendingPathComponent(
      "shared/corpus/conntrack/aks-engine-issue1912_conntrack-L-grep_service-dnat_MANGLED-first-chars.txt"
    ).path
    let run = try lbscope(["conntrack", path, "--format", "json"])
    #expect(run.status == 65)
    #expect(run.stdout.contains("\"truncated\": 1"))
    #expect(run.stderr.hasPrefix("lbscope: \(path):1: truncated: "))
    #expect(run.stderr.split(separator: "\n").count == 1)
  }

  @Test func unreadableOrUnrecognisedInputExitsSixtySix() throws {
    let missing = try lbscope(["conntrack", "/nonexistent/file.txt"])
    #expect(missing.status == 66)
    #expect(missing.stderr.hasPrefix("lbscope: /nonexistent/file.txt: cannot open"))
    let directory = try lbscope(["conntrack", "captures"])
    #expect(directory.status == 66)
    let garbage = try lbscope(["conntrack", "captures/uniform/node.pcap"])
    #expect(garbage.status == 66)
    #expect(garbage.stderr.contains("lbscope conntrack reads"))
    let empty = temporaryPath("empty")
    FileManager.default.createFile(atPath: empty, contents: Data())
    defer { try? FileManager.default.removeItem(atPath: empty) }
    #expect(try lbscope(["conntrack", empty]).status == 0, "an empty table is a valid, empty table")
  }

  @Test func existingOutputIsNotReplacedWithoutForce() throws {
    let output = temporaryPath("report.md")
    FileManager.default.createFile(atPath: output, contents: Data("keep".utf8))
    defer { try? FileManager.default.removeItem(atPath: output) }
    let refused = try lbscope(["conntrack", "captures/uniform/conntrack-L.txt", "-o", output])
    #expect(refused.status == 73)
    #expect(try String(contentsOfFile: output, encoding: .utf8) == "keep")
    let forced = try lbscope(["conntrack", "captures/uniform/conntrack-L.txt", "-o", output, "--force"])
    #expect(forced.status == 0)
    #expect(try String(contentsOfFile: output, encoding: .utf8).hasPrefix("# lbscope report"))
  }
}

@Suite struct CLIBehaviourTests {
  @Test func readsStandardInput() throws {
    let data = try Data(
      contentsOf: repository.appendingPathComponent("captures/affinity-nat/conntrack-L.txt"))
    let piped = try lbscope(["conntrack", "-", "--format", "json"], stdin: data)
    let direct = try lbscope(["conntrack", "captures/affinity-nat/conntrack-L.txt", "--format", "json"])
    #expect(piped.status == 0)
    #expect(
      piped.stdout.replacingOccurrences(
        of: "\"path\": \"-\"", with: "\"path\": \"captures/affinity-nat/conntrack-L.txt\"") == direct.stdout)
  }

  @Test func serviceFocusLeavesOtherFrontendsOut() throws {
    let run = try lbscope([
      "conntrack", "captures/uniform/conntrack-L.txt", "--service", "10.96.0.99:80", "--format", "json",
    ])
    #expect(run.status == 0)
    #expect(run.stdout.contains("\"servicesFilteredOut\": 1"))
  }

  /// reports/ holds what lbscope makes from captures/; regenerate with scripts/regen-reports.
  @Test func committedReportsAreNotStale() throws {
    let list = try String(contentsOf: repository.appendingPathComponent("reports/COMMANDS"), encoding: .utf8)
    var checked = 0
    for line in list.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
      let parts = line.split(separator: "\t").map(String.init)
      try #require(parts.count == 2, "reports/COMMANDS: OUTPUT<TAB>ARGUMENTS")
      let run = try lbscope(parts[1].split(separator: " ").map(String.init))
      let committed = try String(contentsOf: repository.appendingPathComponent(parts[0]), encoding: .utf8)
      #expect(run.stdout == committed, "\(parts[0]) is stale: run scripts/regen-reports")
      checked += 1
    }
    #expect(checked >= 4)
  }
}
