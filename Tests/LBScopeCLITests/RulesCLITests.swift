import Foundation
import Testing

@Suite struct RulesCLITests {
  @Test func rulesJSONListsTheCaptureServiceWithPinnedClients() throws {
    let run = try lbscope([
      "rules", "captures/affinity-nat/iptables-save.txt", "captures/affinity-nat/xt_recent", "--format",
      "json",
    ])
    #expect(run.status == 0)
    let json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
    #expect(json["schemaVersion"] as? Int == 1)
    let services = try #require(json["services"] as? [[String: Any]])
    #expect(services.count == 1)
    #expect(services.first?["name"] as? String == "lab/web:http")
    let backends = try #require(services.first?["backends"] as? [[String: Any]])
    #expect(backends.compactMap { $0["pinnedClients"] as? Int }.reduce(0, +) == 5)
  }

  @Test func rulesExitCodesFollowTheContract() throws {
    let corrupt =
      "../shared/corpus/iptables/k8s-issue114537_iptables-save-t-nat-grep_CORRUPT-DNAT-to-destination.txt"
    #expect(try lbscope(["rules", corrupt]).status == 65)
    let listing =
      "../shared/corpus/iptables/k8s-ipvs-README_iptables-t-nat-nL_ipvs-mode-ipset-LB_LIST-FORMAT-not-save.txt"
    let unknown = try lbscope(["rules", listing])
    #expect(unknown.status == 66)
    #expect(unknown.stderr.contains("not a rules dump"))
    #expect(
      try lbscope(["rules", "captures/uniform/iptables-save.txt", "--trace", "1.2.3.4:5"]).status == 64)
    #expect(
      try lbscope(["rules", "captures/stale-probabilities/iptables-save.txt", "--fail-on", "warning"]).status
        == 1)
  }

  @Test func traceIsPrinted() throws {
    let run = try lbscope([
      "rules", "captures/uniform/iptables-save.txt", "--trace", "192.168.50.11:40000", "10.96.0.10:80",
    ])
    #expect(run.status == 0)
    #expect(run.stdout.contains("## Trace: tcp 192.168.50.11:40000 → 10.96.0.10:80"))
    #expect(run.stdout.contains("| dnat | `10.244.1.5:8080` | 25% |"))
  }
}
