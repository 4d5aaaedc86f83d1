import Foundation
import LBLive

#if canImport(Glibc)
  import Glibc
#endif

public let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()

/// Shared by the test targets that build labs in network namespaces (`scripts/lab-live`) and
/// run the built binary.

/// The built `lbscope` beside the test bundle, or in `.build/debug`.
public let binary: String = {
  let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    .appendingPathComponent("lbscope")
  if FileManager.default.isExecutableFile(atPath: beside.path) { return beside.path }
  return repository.appendingPathComponent(".build/debug/lbscope").path
}()

/// Live tests build network namespaces and read their conntrack tables: root only.
public let isRoot = getuid() == 0
public let needsRoot = "needs root to create network namespaces and read conntrack over netlink"

public struct Run {
  public var status: Int32
  public var stdout: String
  public var stderr: String
}

/// Runs a program to completion (at most two minutes) with its output captured.
@discardableResult
public func run(_ program: String, _ arguments: [String]) throws -> Run {
  let outcome = ChildProcess.run([program] + arguments, timeout: .seconds(120))
  if let failure = outcome.failure { throw LabFailure(message: "\(program): \(failure)") }
  return Run(
    status: outcome.status ?? 128 + (outcome.signal ?? 0),
    stdout: String(decoding: outcome.output, as: UTF8.self),
    stderr: String(decoding: outcome.errorOutput, as: UTF8.self))
}

/// A lab made by `scripts/lab-live` under its own prefix; `close()` tears it down.
public final class Lab {
  public let prefix: String
  public var node: String { "\(prefix)-node" }
  public var nodePath: String { "/var/run/netns/\(node)" }

  public init(_ name: String) throws {
    prefix = "lbl-\(name)-\(getpid() % 100_000)"
    let result = try run(repository.appendingPathComponent("scripts/lab-live").path, ["up", prefix])
    guard result.status == 0 else {
      throw LabFailure(message: "lab-live up failed: \(result.stderr)")
    }
  }

  /// Drives `count` connections through the Service; returns how many succeeded (the truth).
  public func drive(_ count: Int) throws -> Int {
    let result = try run(
      repository.appendingPathComponent("scripts/lab-live").path, ["drive", prefix, "\(count)"])
    return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
  }

  /// Runs a command inside the node namespace.
  public func inNode(_ arguments: [String]) throws -> Run {
    try run("/usr/sbin/ip", ["netns", "exec", node] + arguments)
  }

  public func close() {
    _ = try? run(repository.appendingPathComponent("scripts/lab-live").path, ["down", prefix])
  }
}

public struct LabFailure: Error, CustomStringConvertible {
  public var message: String
  public init(message: String) { self.message = message }
  public var description: String { message }
}

public func temporaryDirectory(_ name: String) throws -> String {
  let path = FileManager.default.temporaryDirectory.appendingPathComponent(
    "lbscope-lab-\(UUID().uuidString)-\(name)"
  ).path
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}
