import Foundation
import Testing

/// Runs the built `lbscope` with `arguments`, killing it after `deadline` seconds; `during` runs
/// on another thread while it does (a FIFO writer, a file that grows). Returns the run and
/// whether it ended on its own.
func lbscopeWithDeadline(
  _ arguments: [String], executable: String? = nil, deadline: TimeInterval = 60,
  during: (@Sendable (Process) -> Void)? = nil
) throws -> (run: Run, ended: Bool) {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable ?? binary.path)
  process.arguments = arguments
  process.currentDirectoryURL = repository
  let out = temporaryPath("stdout")
  let err = temporaryPath("stderr")
  FileManager.default.createFile(atPath: out, contents: nil)
  FileManager.default.createFile(atPath: err, contents: nil)
  defer {
    try? FileManager.default.removeItem(atPath: out)
    try? FileManager.default.removeItem(atPath: err)
  }
  let outHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
  let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
  process.standardOutput = outHandle
  process.standardError = errHandle
  process.standardInput = FileHandle.nullDevice
  try process.run()
  let helper = during.map { body in
    let thread = Thread { body(process) }
    thread.start()
    return thread
  }
  let start = Date()
  while process.isRunning && Date().timeIntervalSince(start) < deadline { usleep(20_000) }
  let ended = !process.isRunning
  if !ended { kill(process.processIdentifier, SIGKILL) }
  process.waitUntilExit()
  _ = helper
  try outHandle.close()
  try errHandle.close()
  let run = Run(
    status: process.terminationStatus,
    stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
    stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
  return (run, ended)
}

/// The README's exit-code table ("Exit codes"), row by row, for every command that reads files:
/// `conntrack`, `rules`, `pcap`. (The conntrack rows in CLITests.swift's `ExitCodeTests` are the
/// first of these; this suite covers the other commands and the odd inputs: FIFOs, files that
/// grow while read, binary garbage, text given to the pcap reader.)
@Suite struct ExitCodeTableTests {
  /// A one-line error in the documented format: `lbscope: PATH[:LINE]: reason; hint`.
  func isOneLineError(_ run: Run, path: String) -> Bool {
    let lines = run.stderr.split(separator: "\n")
    return lines.count == 1 && run.stderr.hasPrefix("lbscope: \(path)") && run.stderr.contains("; ")
  }

  // MARK: 0 success

  @Test func zeroOnCleanInputs() throws {
    let pcap = try lbscope(["pcap", "captures/uniform/node.pcap"])
    #expect(pcap.status == 0)
    #expect(pcap.stdout.hasPrefix("# lbscope report"))
    let rules = try lbscope(["rules", "captures/uniform/iptables-save.txt", "--format", "json"])
    #expect(rules.status == 0)
    #expect(rules.stdout.hasPrefix("{"))
  }

  // MARK: 1 findings at or above --fail-on

  @Test func oneWhenFindingsReachFailOn() throws {
    #expect(try lbscope(["pcap", "captures/affinity-nat/node.pcap", "--fail-on", "warning"]).status == 1)
    #expect(try lbscope(["pcap", "captures/uniform/node.pcap", "--fail-on", "warning"]).status == 0)
    #expect(
      try lbscope(["rules", "captures/stale-probabilities/iptables-save.txt", "--fail-on", "warning"]).status
        == 1)
    #expect(try lbscope(["rules", "captures/uniform/iptables-save.txt", "--fail-on", "warning"]).status == 0)
  }

  // MARK: 64 usage

  @Test func sixtyFourOnUsageErrors() throws {
    #expect(try lbscope(["pcap"]).status == 64)
    #expect(try lbscope(["pcap", "captures/uniform/node.pcap", "--max-flows", "many"]).status == 64)
    #expect(try lbscope(["rules", "captures/uniform/iptables-save.txt", "--fail-on", "info"]).status == 64)
    #expect(try lbscope(["no-such-command"]).status == 64)
  }

  // MARK: 66 unreadable or unrecognised

  @Test func sixtySixOnMissingFilesAndDirectories() throws {
    for command in ["conntrack", "rules", "pcap"] {
      let missing = try lbscope([command, "/nonexistent/input"])
      #expect(missing.status == 66, "\(command)")
      #expect(isOneLineError(missing, path: "/nonexistent/input"), "\(command): \(missing.stderr)")
    }
    for command in ["conntrack", "pcap"] {
      let directory = try lbscope([command, "captures"])
      #expect(directory.status == 66, "\(command)")
      #expect(isOneLineError(directory, path: "captures"), "\(command): \(directory.stderr)")
    }
  }

  @Test func sixtySixOnEmptyFilesWhereEmptyIsNoInput() throws {
    let empty = temporaryPath("empty")
    FileManager.default.createFile(atPath: empty, contents: Data())
    defer { try? FileManager.default.removeItem(atPath: empty) }
    let pcap = try lbscope(["pcap", empty])
    #expect(pcap.status == 66)
    #expect(pcap.stderr.contains("empty file"))
    let rules = try lbscope(["rules", empty])
    #expect(rules.status == 66)
    #expect(rules.stderr.contains("lbscope rules reads iptables-save"), "names the formats it reads")
  }

  @Test func sixtySixOnBinaryGarbageToTextReaders() throws {
    for command in ["conntrack", "rules"] {
      let run = try lbscope([command, "captures/uniform/node.pcap"])
      #expect(run.status == 66, "\(command)")
      #expect(run.stderr.contains("lbscope \(command) reads"), "\(command): \(run.stderr)")
      #expect(run.stdout.isEmpty)
    }
  }

  @Test func sixtySixOnTextGivenToThePcapReader() throws {
    let run = try lbscope(["pcap", "captures/uniform/conntrack-L.txt"])
    #expect(run.status == 66)
    #expect(isOneLineError(run, path: "captures/uniform/conntrack-L.txt"))
    #expect(run.stderr.contains("not a pcap or pcapng capture"))
    #expect(run.stdout.isEmpty)
  }

  // MARK: 65 damaged input, partial results

  @Test func sixtyFiveOnACaptureCutMidRecordWithTheReportWritten() throws {
    let whole = try Data(contentsOf: repository.appendingPathComponent("captures/uniform/node.pcap"))
    let cut = temporaryPath("cut.pcap")
    // Not on a record boundary: 300000 falls inside a record of this capture.
    FileManager.default.createFile(atPath: cut, contents: whole.prefix(300_000))
    defer { try? FileManager.default.removeItem(atPath: cut) }
    let run = try lbscope(["pcap", cut, "--format", "json"])
    #expect(run.status == 65)
    #expect(run.stdout.contains("\"partial\": true"))
    #expect(run.stdout.contains("\"truncated\": 1"))
    #expect(isOneLineError(run, path: cut))
    #expect(run.stderr.contains("file ends inside a packet"))
  }

  @Test func sixtyFiveOnAnIptablesDumpCutBeforeItsCommit() throws {
    let whole = try Data(contentsOf: repository.appendingPathComponent("captures/uniform/iptables-save.txt"))
    // Half the dump: it ends inside a rule of the nat table, whose COMMIT never comes.
    let path = temporaryPath("cut-iptables-save.txt")
    FileManager.default.createFile(atPath: path, contents: whole.prefix(whole.count / 2))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let run = try lbscope(["rules", path, "--format", "json"])
    #expect(run.status == 65)
    #expect(run.stdout.contains("\"partial\": true"))
    #expect(isOneLineError(run, path: path))
    #expect(run.stderr.contains("has no COMMIT"))
  }

  // MARK: 73 output

  @Test func seventyThreeOnUnwritableOrExistingOutput() throws {
    let unwritable = try lbscope(["pcap", "captures/uniform/node.pcap", "-o", "/nonexistent/dir/report.md"])
    #expect(unwritable.status == 73)
    #expect(isOneLineError(unwritable, path: "/nonexistent/dir/report.md"))
    let output = temporaryPath("report.json")
    FileManager.default.createFile(atPath: output, contents: Data("keep".utf8))
    defer { try? FileManager.default.removeItem(atPath: output) }
    for command in [
      ["pcap", "captures/uniform/node.pcap"], ["rules", "captures/uniform/iptables-save.txt"],
    ] {
      let refused = try lbscope(command + ["-o", output])
      #expect(refused.status == 73, "\(command[0])")
      #expect(refused.stderr.contains("--force"), "\(command[0]): \(refused.stderr)")
      #expect(try String(contentsOfFile: output, encoding: .utf8) == "keep")
    }
    let forced = try lbscope(["rules", "captures/uniform/iptables-save.txt", "-o", output, "--force"])
    #expect(forced.status == 0)
    #expect(try String(contentsOfFile: output, encoding: .utf8).hasPrefix("# lbscope"))
  }

  // MARK: 77 missing privilege

  @Test(.enabled(if: getuid() == 0, "needs root to drop privileges with setpriv"))
  func seventySevenWithoutCapNetAdmin() throws {
    let (run, ended) = try lbscopeWithDeadline(
      [
        "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", binary.path, "conntrack",
        "--live",
      ],
      executable: "/usr/bin/setpriv", deadline: 30)
    #expect(ended)
    #expect(run.status == 77)
    #expect(run.stderr.split(separator: "\n").count == 1)
    #expect(run.stderr.contains("CAP_NET_ADMIN"))
  }

  // MARK: Odd inputs: FIFOs and files that grow while read

  /// Starts `dd` copying `source` into the FIFO: it blocks in open(2) until lbscope opens the
  /// FIFO for reading, then writes everything and closes it (the reader sees end of file). A
  /// separate process rather than a thread of the test, so a writer that is never reached can be
  /// killed, and a reader that stops early shows as a failed `dd` (EPIPE).
  func fifoWriter(_ fifo: String, from source: String) throws -> Process {
    let dd = Process()
    dd.executableURL = URL(fileURLWithPath: "/bin/dd")
    dd.arguments = ["if=\(source)", "of=\(fifo)", "bs=65536", "status=none"]
    dd.currentDirectoryURL = repository
    dd.standardError = FileHandle.nullDevice
    try dd.run()
    return dd
  }

  /// Waits up to `seconds` for `process` to end, then kills it; returns whether it ended itself.
  func ends(_ process: Process, within seconds: TimeInterval) -> Bool {
    let start = Date()
    while process.isRunning && Date().timeIntervalSince(start) < seconds { usleep(10_000) }
    let ended = !process.isRunning
    // SIGKILL: the test process blocks SIGTERM, and its children inherit the mask.
    if !ended { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    return ended
  }

  /// Reads `source` through a FIFO with `command`, and the file directly: the reports must be the
  /// same from `"schemaVersion"` on (before it, only the input's path differs).
  func expectFIFOReadToItsEnd(_ command: String, _ source: String) throws {
    let fifo = temporaryPath("fifo")
    #expect(mkfifo(fifo, 0o600) == 0)
    defer { try? FileManager.default.removeItem(atPath: fifo) }
    let writer = try fifoWriter(fifo, from: source)
    let (run, ended) = try lbscopeWithDeadline([command, fifo, "--format", "json"], deadline: 60)
    #expect(self.ends(writer, within: 10), "the writer was never read to its end")
    #expect(writer.terminationStatus == 0, "dd could not write the whole input (the reader stopped early)")
    #expect(ended)
    #expect(run.status == 0, "\(run.stderr)")
    let direct = try lbscope([command, source, "--format", "json"])
    #expect(direct.status == 0)
    #expect(!servicesPart(direct.stdout).isEmpty)
    #expect(servicesPart(run.stdout) == servicesPart(direct.stdout))
  }

  @Test func readsAFIFOToItsEnd() throws {
    try expectFIFOReadToItsEnd("conntrack", "captures/uniform/conntrack-L.txt")
  }

  @Test func readsACaptureFromAFIFO() throws {
    try expectFIFOReadToItsEnd("pcap", "captures/uniform/node.pcap")
  }

  @Test func readsIptablesSaveFromAFIFO() throws {
    // A FIFO cannot be sniffed and read again: it is iptables-save, as standard input is.
    try expectFIFOReadToItsEnd("rules", "captures/uniform/iptables-save.txt")
  }

  @Test func reportRefusesAFIFOInOneLineInsteadOfHanging() throws {
    let fifo = temporaryPath("fifo")
    #expect(mkfifo(fifo, 0o600) == 0)
    defer { try? FileManager.default.removeItem(atPath: fifo) }
    let writer = try fifoWriter(fifo, from: "captures/uniform/conntrack-L.txt")
    let (run, ended) = try lbscopeWithDeadline(["report", fifo], deadline: 30)
    _ = self.ends(writer, within: 0)
    #expect(ended)
    #expect(run.status == 66)
    #expect(isOneLineError(run, path: fifo), "\(run.stderr)")
    #expect(run.stderr.contains("lbscope conntrack, rules or pcap"))
  }

  @Test func aCaptureThatGrowsWhileReadEndsWithWhatWasThere() throws {
    // A 30 MB capture (the lab's records, 40 times) and a writer that, once lbscope has opened
    // it, appends the records again (up to 20 s and 128 MB more). A reader that followed the file would read it all;
    // lbscope reads what was there when it opened the file and says the file grew.
    let whole = try Data(contentsOf: repository.appendingPathComponent("captures/uniform/node.pcap"))
    let records = Data(whole.dropFirst(24))
    var initial = whole
    for _ in 1..<40 { initial.append(records) }
    let path = temporaryPath("growing.pcap")
    FileManager.default.createFile(atPath: path, contents: initial)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let (run, ended) = try lbscopeWithDeadline(["pcap", path, "--format", "json"], deadline: 120) { process in
      guard let handle = FileHandle(forWritingAtPath: path) else { return }
      defer { try? handle.close() }
      let start = Date()
      let descriptors = "/proc/\(process.processIdentifier)/fd"
      func opened() -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: descriptors)) ?? []).contains {
          (try? FileManager.default.destinationOfSymbolicLink(atPath: descriptors + "/" + $0)) == path
        }
      }
      while process.isRunning && !opened() && Date().timeIntervalSince(start) < 20 { usleep(1_000) }
      var rounds = 0
      var added = 0
      while process.isRunning && Date().timeIntervalSince(start) < 20 && added < 128 << 20 {
        handle.seekToEndOfFile()
        // The records in two writes, the first ending inside a record: the file is always a
        // valid capture, possibly cut inside its last record, as a copy in progress is.
        let piece = rounds % 2 == 0 ? records.prefix(records.count / 3) : records.dropFirst(records.count / 3)
        handle.write(piece)
        added += piece.count
        rounds += 1
      }
    }
    #expect(ended)
    #expect(run.stdout.contains("\"connections\""))
    // What was there at open: the initial file, or (if an append slipped in between lbscope's
    // open and its fstat) a little more, possibly ending inside a record: then exit 65, partial.
    let note = "the file grew while it was read: read its first "
    let read = run.stdout.range(of: note).map { run.stdout[$0.upperBound...].prefix { $0.isNumber } }
    #expect(read.flatMap { Int($0) }.map { $0 >= initial.count } == true, "\(run.stdout.prefix(1500))")
    if run.status == 65 {
      #expect(run.stdout.contains("\"partial\": true"))
      #expect(run.stderr.contains("file ends inside a packet"))
    } else {
      #expect(run.status == 0, "\(run.stderr)")
    }
  }

  @Test func aFileThatGrowsWhileReadEnds() throws {
    let lines = try String(
      contentsOf: repository.appendingPathComponent("captures/uniform/conntrack-L.txt"), encoding: .utf8
    ).split(separator: "\n", omittingEmptySubsequences: true)
    let path = temporaryPath("growing.txt")
    FileManager.default.createFile(atPath: path, contents: Data((lines.joined(separator: "\n") + "\n").utf8))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let appendix = Data((lines.joined(separator: "\n") + "\n").utf8)
    // The writer appends a copy of the table every few milliseconds for as long as lbscope runs
    // (at most 20 s): a reader that followed the file would never end.
    let (run, ended) = try lbscopeWithDeadline(["conntrack", path, "--format", "json"], deadline: 60) {
      process in
      guard let handle = FileHandle(forWritingAtPath: path) else { return }
      let start = Date()
      while process.isRunning && Date().timeIntervalSince(start) < 20 {
        handle.seekToEndOfFile()
        handle.write(appendix)
        usleep(2_000)
      }
      try? handle.close()
    }
    #expect(ended)
    #expect([0, 65].contains(run.status), "whole lines read are a valid table; a cut last line is damage")
    #expect(run.stdout.contains("\"connections\""))
  }
}

/// The JSON report from `"schemaVersion"` on (inputs name their paths, which differ).
func servicesPart(_ json: String) -> String {
  guard let start = json.range(of: "\"schemaVersion\"") else { return "" }
  return String(json[start.lowerBound...])
}
