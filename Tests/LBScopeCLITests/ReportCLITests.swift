import Foundation
import Testing

/// `lbscope report` on every lab scenario: the top finding is the cause the scenario was built
/// to show, and the uniform scenario has nothing at warning or above.
struct ReportCLITests {
  static let scenarios: [(name: String, inputs: [String], cause: String?)] = [
    ("uniform", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"], nil),
    (
      "affinity-nat", ["conntrack-L.txt", "iptables-save.txt", "xt_recent", "node.pcap"],
      "affinity-concentrates-traffic"
    ),
    ("stale-probabilities", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"], "stale-probabilities"),
    (
      "nft-affinity", ["conntrack-L.txt", "nft-list-ruleset.txt", "node.pcap"],
      "affinity-concentrates-traffic"
    ),
    // NodePort traffic under externalTrafficPolicy Local reaches only local endpoints: expected.
    ("etp-local", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"], nil),
    ("etp-local-none-drop", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"], "no-local-endpoints"),
    ("etp-local-none-reject", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"], "no-endpoints"),
    (
      "etp-cluster-masq", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"],
      "masquerade-hides-client-ip"
    ),
    ("hidden-hosts", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"], "sources-collapsed-by-snat"),
    // Stale rules still sending 40% to a backend that refuses: the rules are the cause.
    ("stale-failing", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"], "stale-probabilities"),
    ("long-lived", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"], "long-lived-connections-skew"),
  ]

  func findings(_ scenario: String, _ inputs: [String], extra: [String] = []) throws -> [[String: Any]] {
    let run = try lbscope(
      ["report"] + inputs.map { "captures/\(scenario)/\($0)" } + ["--format", "json"] + extra)
    #expect(run.status == 0, "\(run.stderr)")
    let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
    return try #require(object?["findings"] as? [[String: Any]])
  }

  @Test(arguments: scenarios.map(\.name))
  func topFindingIsTheScenariosCause(_ name: String) throws {
    let scenario = try #require(Self.scenarios.first { $0.name == name })
    let found = try findings(name, scenario.inputs)
    if let cause = scenario.cause {
      #expect(found.first?["code"] as? String == cause, "\(found.map { $0["code"] ?? "" })")
      #expect(!found.contains { $0["code"] as? String == "imbalanced-distribution" })
    } else {
      #expect(!found.contains { ["critical", "warning"].contains($0["severity"] as? String) }, "\(found)")
    }
  }

  @Test func affinityFixNamesTheRealService() throws {
    let found = try findings(
      "affinity-nat", ["conntrack-L.txt", "iptables-save.txt", "xt_recent", "node.pcap"])
    let top = try #require(found.first)
    #expect(top["severity"] as? String == "critical")
    #expect(
      (top["remediation"] as? String)?.contains(
        #"kubectl -n lab patch svc web -p '{"spec":{"sessionAffinity":"None"}}'"#)
        == true)
  }

  @Test func k8sNamesLabelPodsAndNodes() throws {
    let run = try lbscope([
      "report", "captures/affinity-nat/conntrack-L.txt", "--k8s", "captures/affinity-nat/k8s.json",
      "--format", "json",
    ])
    #expect(run.status == 0, "\(run.stderr)")
    let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
    let service = try #require((object?["services"] as? [[String: Any]])?.first)
    #expect(service["name"] as? String == "lab/web:http")
    let backends = try #require(service["backends"] as? [[String: Any]])
    #expect(backends.map { $0["pod"] as? String } == ["lab/web-0", "lab/web-1", "lab/web-2"])
    #expect(backends.allSatisfy { $0["node"] as? String == "lab-node-1" })
  }

  @Test func sourcesThatDisagreeAreShownWithTheTrustedOne() throws {
    let run = try lbscope([
      "report", "captures/uniform/conntrack-L.txt", "captures/uniform/node.pcap", "--format", "json",
    ])
    let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
    let service = try #require((object?["services"] as? [[String: Any]])?.first)
    let sources = try #require(service["sources"] as? [[String: Any]])
    #expect(sources.map { $0["source"] as? String } == ["conntrack", "capture"])
    #expect(sources.map { $0["total"] as? Int } == [150, 145])
    #expect(service["trustedSource"] as? String == "conntrack")
  }

  @Test func unknownInputIsOneLineAndExit66() throws {
    let run = try lbscope(["report", "README.md"])
    #expect(run.status == 66)
    #expect(run.stderr.split(separator: "\n").count == 1)
    #expect(run.stderr.contains("pcap/pcapng"))
  }
}
