import Foundation
import Testing

/// `lbscope report` on externalTrafficPolicy Local: the Expected column shows what this node's
/// rules give the traffic it saw (NodePort traffic: only the local endpoints), not the
/// cluster-wide share.
struct ReportExpectedSharesCLITests {
  static let inputs = [
    "captures/etp-local/conntrack-L.txt", "captures/etp-local/iptables-save.txt",
    "captures/etp-local/node.pcap",
  ]

  @Test func markdownShowsTheLocalSharesForNodePortTraffic() throws {
    let run = try lbscope(["report"] + Self.inputs)
    #expect(run.status == 0, "\(run.stderr)")
    let lines = run.stdout.split(separator: "\n").map(String.init)
    let header = try #require(lines.first { $0.hasPrefix("| Backend | Connections |") })
    #expect(header.contains("| Expected, ClusterIP | Expected, NodePort/LB | Share |"), "\(header)")
    // web-0 and web-1 run on this node: NodePort traffic gets half each there, 25% cluster-wide.
    let local = try #require(lines.first { $0.hasPrefix("| `10.244.1.2:8080`") })
    #expect(local.contains("| 20 | 25% | 50% | 50% |"), "\(local)")
    let remote = try #require(lines.first { $0.hasPrefix("| `10.244.1.4:8080`") })
    #expect(remote.contains("| 0 | 25% | 0% | 0% |"), "\(remote)")
    #expect(run.stdout.contains("all 40 observed connection(s) arrived on a NodePort/LB address"))
  }

  @Test func jsonCarriesTheSharesTheVerdictTestedAgainst() throws {
    let run = try lbscope(["report"] + Self.inputs + ["--format", "json"])
    let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
    let service = try #require((object["services"] as? [[String: Any]])?.first)
    let traffic = try #require(service["frontendTraffic"] as? [String: Any])
    #expect(traffic["external"] as? Int == 40)
    #expect(traffic["clusterIP"] as? Int == 0)
    let backends = try #require(service["backends"] as? [[String: Any]])
    #expect(backends.map { ($0["expectedShareForTraffic"] as? NSNumber)?.doubleValue } == [0.5, 0.5, 0, 0])
    #expect(backends.map { ($0["expectedShare"] as? NSNumber)?.doubleValue } == [0.25, 0.25, 0.25, 0.25])
  }

  /// Where cluster-IP and external shares are the same, one Expected column as before.
  @Test func oneExpectedColumnWhenTheSharesAgree() throws {
    let run = try lbscope([
      "report", "captures/uniform/conntrack-L.txt", "captures/uniform/iptables-save.txt",
    ])
    #expect(run.stdout.contains("| Backend | Connections | Expected | Share |"))
    #expect(!run.stdout.contains("Expected, NodePort/LB"))
  }
}
