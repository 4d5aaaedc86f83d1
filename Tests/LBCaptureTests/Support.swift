import Foundation
import LBLive
import Testing

#if canImport(Glibc)
  import Glibc
#endif

let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

/// The built `lbscope` beside the test bundle, or in `.build/debug`.
let binary: String = {
  let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("lbscope")
  if FileManager.default.isExecutableFile(atPath: beside.path) { return beside.path }
  return repository.appendingPathComponent(".build/debug/lbscope").path
}()

/// Live tests build network namespaces and read their conntrack tables: root only.
let isRoot = getuid() == 0
let needsRoot = "needs root to create network namespaces and read conntrack over netlink"

struct Run {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Runs a program to completion (at most two minutes) with its output captured.
@discardableResult
func run(_ program: String, _ arguments: [String]) throws -> Run {
  let outcome = ChildProcess.run([program] + arguments, timeout: .seconds(120))
  if let failure = outcome.failure { throw CaptureLabFailure(message: "\(program): \(failure)") }
  return Run(
    status: outcome.status ?? 128 + (outcome.signal ?? 0),
    stdout: String(decoding: outcome.output, as: UTF8.self),
    stderr: String(decoding: outcome.errorOutput, as: UTF8.self))
}

/// A lab made by `scripts/lab-live` under its own prefix; `close()` tears it down.
final class Lab {
  let prefix: String
  var node: String { "\(prefix)-node" }
  var nodePath: String { "/var/run/netns/\(node)" }

  init(_ name: String) throws {
    prefix = "lbl-\(name)-\(getpid() % 100_000)"
    let result = try run(repository.appendingPathComponent("scripts/lab-live").path, ["up", prefix])
    guard result.status == 0 else {
      throw CaptureLabFailure(message: "lab-live up failed: \(result.stderr)")
    }
  }

  /// Drives `count` connections through the Service; returns how many succeeded (the truth).
  func drive(_ count: Int) throws -> Int {
    let result = try run(
      repository.appendingPathComponent("scripts/lab-live").path, ["drive", prefix, "\(count)"])
    return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
  }

  /// Runs a command inside the node namespace.
  func inNode(_ arguments: [String]) throws -> Run {
    try run("/usr/sbin/ip", ["netns", "exec", node] + arguments)
  }

  func close() {
    _ = try? run(repository.appendingPathComponent("scripts/lab-live").path, ["down", prefix])
  }
}

struct CaptureLabFailure: Error, CustomStringConvertible {
  var message: String
  var description: String { message }
}

func temporaryDirectory(_ name: String) throws -> String {
  let path = FileManager.default.temporaryDirectory.appendingPathComponent(
    "lbscope-capture-\(UUID().uuidString)-\(name)"
  ).path
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}
