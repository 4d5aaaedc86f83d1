import Foundation
import LBLabSupport
import LBLive
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Starts `lbscope watch` inside the lab's node and waits until it has subscribed.
func startWatch(_ lab: Lab, _ arguments: [String]) throws -> ChildProcess {
  let started = ChildProcess.start(["/usr/sbin/ip", "netns", "exec", lab.node, binary, "watch"] + arguments)
  guard case .success(let child) = started else { throw LabFailure(message: "cannot start lbscope watch") }
  guard child.waitForError(containing: "watching conntrack events", timeout: .seconds(30)) else {
    throw LabFailure(message: "lbscope watch did not start")
  }
  return child
}

/// The service's connection total in a JSON report: the one `"connections"` line at the
/// service's indentation.
func serviceConnections(_ json: String) -> Int? {
  for line in json.split(separator: "\n") where line.hasPrefix("      \"connections\": ") {
    return Int(
      line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: [","]))
  }
  return nil
}

@Suite(.serialized) struct WatchTests {
  @Test(.enabled(if: isRoot, Comment(rawValue: needsRoot)))
  func watchSeesEveryConnectionTheLabDrives() throws {
    let lab = try Lab("watch")
    defer { lab.close() }
    let report = try temporaryDirectory("watch") + "/report.json"
    let watch = try startWatch(
      lab, ["--duration", "60", "--service", "10.96.0.10:80", "-f", "json", "-o", report])
    let made = try lab.drive(40)
    #expect(made == 40)
    // Let the last destroy events arrive, then end it early with SIGTERM.
    usleep(300_000)
    watch.send(SIGTERM)
    let outcome = watch.wait(timeout: .seconds(30))
    #expect(outcome.status == 0, "\(String(decoding: outcome.errorOutput, as: UTF8.self))")
    let lines = String(decoding: outcome.output, as: UTF8.self).split(separator: "\n")
    #expect(lines.count == made, "one JSON line per new connection")
    #expect(lines.allSatisfy { $0.hasPrefix("{\"event\":\"new\"") && $0.hasSuffix("}") })
    let json = try String(contentsOfFile: report, encoding: .utf8)
    #expect(serviceConnections(json) == made)
    #expect(json.contains("ended by SIGTERM"))
    #expect(json.contains("\"failedConnections\": 0"))
  }

  @Test(.enabled(if: isRoot, Comment(rawValue: needsRoot)), arguments: [SIGINT, SIGTERM])
  func signalMidWatchPrintsACompleteFinalReport(signal: Int32) throws {
    let lab = try Lab("sig\(signal)")
    defer { lab.close() }
    let watch = try startWatch(lab, ["-f", "json"])
    let made = try lab.drive(10)
    usleep(300_000)
    watch.send(signal)
    let outcome = watch.wait(timeout: .seconds(30))
    #expect(outcome.status == 0)
    let text = String(decoding: outcome.output, as: UTF8.self)
    // The stream, then the whole report after it.
    guard let start = text.range(of: "{\n") else {
      Issue.record("no report after the stream: \(text)")
      return
    }
    let reportText = String(text[start.lowerBound...])
    #expect(reportText.hasSuffix("}\n"))
    #expect(reportText.contains("\"schemaVersion\": 1"))
    #expect(serviceConnections(reportText) == made)
    let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
    #expect(reportText.contains("ended by \(name)"))
    let streamed = text[..<start.lowerBound].split(separator: "\n")
    #expect(streamed.count == made)
  }

  @Test(.enabled(if: isRoot, "needs root to drop privileges with setpriv"))
  func watchWithoutCapNetAdminExits77WithOneLine() throws {
    let result = try run(
      PrivilegeTests.dropped[0],
      Array(PrivilegeTests.dropped.dropFirst()) + [binary, "watch", "--duration", "1"])
    #expect(result.status == 77)
    #expect(result.stderr.split(separator: "\n").count == 1)
    #expect(result.stderr.contains("CAP_NET_ADMIN"))
  }
}
