import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// An `lbscope` started in the background, its output going to files.
final class BackgroundRun {
  let process = Process()
  let out = temporaryPath("stdout")
  let err = temporaryPath("stderr")

  init(_ arguments: [String]) throws {
    process.executableURL = binary
    process.arguments = arguments
    process.currentDirectoryURL = repository
    FileManager.default.createFile(atPath: out, contents: nil)
    FileManager.default.createFile(atPath: err, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
    process.standardInput = FileHandle.nullDevice
    try process.run()
  }

  deinit {
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    try? FileManager.default.removeItem(atPath: out)
    try? FileManager.default.removeItem(atPath: err)
  }

  /// Sends `signal`, waits up to `seconds` for the end (then kills); returns the run and
  /// whether it ended by itself.
  func interrupt(with signal: Int32, within seconds: TimeInterval = 20) -> (run: Run, ended: Bool) {
    kill(process.processIdentifier, signal)
    return finish(within: seconds)
  }

  func finish(within seconds: TimeInterval) -> (run: Run, ended: Bool) {
    let start = Date()
    while process.isRunning && Date().timeIntervalSince(start) < seconds { usleep(10_000) }
    let ended = !process.isRunning
    if !ended { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    let run = Run(
      status: process.terminationReason == .exit
        ? process.terminationStatus : 128 + process.terminationStatus,
      stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
      stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    return (run, ended)
  }
}

/// A FIFO that never ends: the test holds it open for reading and writing (O_RDWR does not wait
/// for a partner on Linux), puts `head` in it (at most the pipe's 64 KiB), and lbscope reads
/// that, then waits for more for ever.
final class EndlessFIFO {
  let path: String
  let descriptor: Int32

  init(name: String, head: Data) throws {
    path = temporaryPath(name)
    guard mkfifo(path, 0o600) == 0 else { throw POSIXError(.EEXIST) }
    descriptor = open(path, O_RDWR | O_CLOEXEC)
    precondition(head.count <= 60_000, "more than a pipe holds")
    let written = head.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    precondition(written == head.count)
  }

  deinit {
    close(descriptor)
    unlink(path)
  }

  /// Bytes in the pipe not yet read.
  var unread: Int32 {
    var count: Int32 = 0
    _ = ioctl(descriptor, UInt(FIONREAD), &count)
    return count
  }

  /// Waits until the reader has taken everything in the pipe (so it is blocked waiting for more).
  func waitUntilDrained(within seconds: TimeInterval = 30) -> Bool {
    let start = Date()
    while unread > 0 && Date().timeIntervalSince(start) < seconds { usleep(10_000) }
    return unread == 0
  }
}

/// Entries of a directory whose name contains `.lbscope-tmp-` (a report or bundle half-written).
func scratchLeftovers(in directory: String) -> [String] {
  ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter {
    $0.contains(".lbscope-tmp-")
  }
}

/// The README's row "130 interrupted": SIGINT or SIGTERM while a command reads ends it with
/// exit status 130, one line on standard error, and no half-written output: the old file (with
/// `--force`) or nothing, and no scratch file or extracted archive left behind.
@Suite struct InterruptTests {
  static let conntrackHead = Data(
    (try? String(
      contentsOf: repository.appendingPathComponent("captures/uniform/conntrack-L.txt"), encoding: .utf8))
      .map { text in text.split(separator: "\n").prefix(100).joined(separator: "\n") + "\n" }?.utf8 ?? "".utf8
  )

  struct Case: CustomTestStringConvertible, Sendable {
    var command: String
    var source: String
    var bytes: Int
    var signal: Int32
    var testDescription: String { "\(command) \(signal == SIGINT ? "SIGINT" : "SIGTERM")" }
  }

  static let cases = [
    Case(command: "conntrack", source: "captures/uniform/conntrack-L.txt", bytes: 20_000, signal: SIGINT),
    Case(command: "pcap", source: "captures/uniform/node.pcap", bytes: 60_000, signal: SIGTERM),
    Case(command: "rules", source: "captures/uniform/iptables-save.txt", bytes: 6_000, signal: SIGINT),
  ]

  @Test(arguments: cases)
  func exits130AndLeavesAnExistingOutputAsItWas(_ c: Case) throws {
    let data = try Data(contentsOf: repository.appendingPathComponent(c.source)).prefix(c.bytes)
    let fifo = try EndlessFIFO(name: "endless", head: Data(data))
    let directory = temporaryPath("out")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let output = directory + "/report.json"
    try Data("keep".utf8).write(to: URL(fileURLWithPath: output))
    let lbscope = try BackgroundRun([c.command, fifo.path, "--format", "json", "-o", output, "--force"])
    try #require(fifo.waitUntilDrained(), "lbscope never read the FIFO")
    usleep(100_000)
    #expect(lbscope.process.isRunning, "a FIFO that never ends keeps lbscope reading")
    let (run, ended) = lbscope.interrupt(with: c.signal)
    #expect(ended)
    #expect(run.status == 130)
    let name = c.signal == SIGINT ? "SIGINT" : "SIGTERM"
    #expect(
      run.stderr
        == "lbscope: \(output): interrupted by \(name); nothing written there (a file already there is unchanged), run the command again\n"
    )
    #expect(run.stdout.isEmpty)
    #expect(try String(contentsOfFile: output, encoding: .utf8) == "keep")
    #expect(scratchLeftovers(in: directory).isEmpty)
  }

  @Test func exits130WithoutCreatingANewOutput() throws {
    let fifo = try EndlessFIFO(name: "endless", head: Self.conntrackHead)
    let output = temporaryPath("report.md")
    let lbscope = try BackgroundRun(["conntrack", fifo.path, "-o", output])
    try #require(fifo.waitUntilDrained())
    let (run, ended) = lbscope.interrupt(with: SIGINT)
    #expect(ended)
    #expect(run.status == 130)
    #expect(run.stderr.split(separator: "\n").count == 1)
    #expect(!FileManager.default.fileExists(atPath: output))
  }

  @Test func exits130WritingToStandardOutput() throws {
    let fifo = try EndlessFIFO(name: "endless", head: Self.conntrackHead)
    let lbscope = try BackgroundRun(["conntrack", fifo.path])
    try #require(fifo.waitUntilDrained())
    let (run, ended) = lbscope.interrupt(with: SIGTERM)
    #expect(ended)
    #expect(run.status == 130)
    #expect(
      run.stderr
        == "lbscope: interrupted by SIGTERM; the report is missing or incomplete, run the command again\n")
    #expect(run.stdout.isEmpty)
  }

  /// A bundle archive that is still arriving (a FIFO named .tar.gz): the interrupt comes while
  /// lbscope extracts it into /tmp, and must remove the extraction.
  @Test(arguments: ["conntrack", "report"])
  func removesAHalfExtractedBundle(command: String) throws {
    let top = "bundle-\(UUID().uuidString)"
    let staging = temporaryPath("staging")
    try FileManager.default.createDirectory(
      atPath: staging + "/" + top, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: staging) }
    try Data("marker\n".utf8).write(to: URL(fileURLWithPath: staging + "/\(top)/a-marker.txt"))
    // Incompressible, so the archive is longer than the part put in the FIFO.
    var noise = [UInt8](repeating: 0, count: 1 << 20)
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    for i in noise.indices {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      noise[i] = UInt8(truncatingIfNeeded: state >> 33)
    }
    try Data(noise).write(to: URL(fileURLWithPath: staging + "/\(top)/z-noise.bin"))
    let tar = Process()
    tar.executableURL = URL(fileURLWithPath: "/bin/tar")
    tar.arguments = [
      "-C", staging, "--no-recursion", "-czf", staging + "/b.tar.gz", top, "\(top)/a-marker.txt",
      "\(top)/z-noise.bin",
    ]
    try tar.run()
    tar.waitUntilExit()
    try #require(tar.terminationStatus == 0)
    let archive = try Data(contentsOf: URL(fileURLWithPath: staging + "/b.tar.gz"))
    try #require(archive.count > 200_000)
    let fifo = try EndlessFIFO(name: "node.tar.gz", head: archive.prefix(60_000))
    let lbscope = try BackgroundRun([command, fifo.path])
    try #require(fifo.waitUntilDrained())
    func extracted() -> [String] {
      ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [])
        .filter { $0.hasPrefix("lbscope-bundle-") }
        .map { "/tmp/\($0)/\(top)/a-marker.txt" }
        .filter { FileManager.default.fileExists(atPath: $0) }
    }
    // Draining the pipe comes before inflating and writing what it held: wait for the file.
    let start = Date()
    while extracted().isEmpty && Date().timeIntervalSince(start) < 20 { usleep(10_000) }
    #expect(extracted().count == 1, "lbscope is extracting the archive")
    let (run, ended) = lbscope.interrupt(with: SIGINT)
    #expect(ended)
    #expect(run.status == 130)
    #expect(run.stderr.hasPrefix("lbscope: interrupted by SIGINT"))
    #expect(extracted().isEmpty, "the half-extracted bundle is removed")
  }

  /// A large regular input interrupted at several points: each run either ends with 130 and the
  /// old file, or ends normally with the complete new report, never anything in between.
  @Test func anInterruptedRunLeavesTheOldFileOrTheCompleteNewOne() throws {
    let lines = try String(
      contentsOf: repository.appendingPathComponent("captures/uniform/conntrack-L.txt"), encoding: .utf8
    ).split(separator: "\n").filter { !$0.contains("flow entries") }
    let input = temporaryPath("large-conntrack.txt")
    var text = ""
    for _ in 0..<400 { text += lines.joined(separator: "\n") + "\n" }
    try Data(text.utf8).write(to: URL(fileURLWithPath: input))
    defer { try? FileManager.default.removeItem(atPath: input) }
    let directory = temporaryPath("out")
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let output = directory + "/report.json"

    let started = Date()
    let reference = try lbscope(["conntrack", input, "--format", "json", "-o", output])
    let duration = Date().timeIntervalSince(started)
    try #require(reference.status == 0, "\(reference.stderr)")
    let complete = try String(contentsOfFile: output, encoding: .utf8)
    try #require(complete.hasPrefix("{"))

    var interrupted = 0
    for fraction in [0.05, 0.2, 0.5, 0.8, 0.95, 1.0] {
      try Data("keep".utf8).write(to: URL(fileURLWithPath: output))
      let lbscope = try BackgroundRun(["conntrack", input, "--format", "json", "-o", output, "--force"])
      usleep(useconds_t(duration * fraction * 1_000_000))
      let (run, ended) = lbscope.interrupt(with: SIGINT, within: 60)
      #expect(ended)
      let now = try String(contentsOfFile: output, encoding: .utf8)
      switch run.status {
      case 130:
        interrupted += 1
        #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
        #expect(now == "keep" || run.stderr.contains("after the report was written"), "at \(fraction)")
        if now != "keep" { #expect(now == complete) }
      case 0:
        #expect(now == complete, "at \(fraction)")
      default:
        Issue.record("exit \(run.status) at \(fraction): \(run.stderr)")
      }
      #expect(scratchLeftovers(in: directory).isEmpty, "at \(fraction)")
    }
    #expect(interrupted > 0, "an interrupt early in the run ends it with 130")
  }
}
