import Foundation
import Testing

/// Every fix `lbscope report` proposes on the lab scenarios can be pasted: where the service's
/// namespace and name are known (kube-proxy comments), no `NAMESPACE`/`NAME` placeholder is left.
struct ReportRemediationCLITests {
  func findings(_ scenario: String, _ inputs: [String]) throws -> [[String: Any]] {
    let run = try lbscope(
      ["report"] + inputs.map { "captures/\(scenario)/\($0)" } + ["--format", "json"])
    let object = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
    return try #require(object?["findings"] as? [[String: Any]])
  }

  @Test(arguments: ReportCLITests.scenarios.map(\.name))
  func remediationsNameTheRealService(_ name: String) throws {
    let scenario = try #require(ReportCLITests.scenarios.first { $0.name == name })
    for f in try findings(name, scenario.inputs) {
      let fix = f["remediation"] as? String ?? ""
      #expect(!fix.contains("NAMESPACE"), "\(f["code"] ?? ""): \(fix)")
      #expect(!fix.contains("svc NAME"), "\(f["code"] ?? ""): \(fix)")
    }
  }

  @Test func noLocalEndpointsGivesCommandsToPaste() throws {
    let found = try findings("etp-local-none-drop", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"])
    let fix = try #require(
      found.first { $0["code"] as? String == "no-local-endpoints" }?["remediation"] as? String)
    #expect(fix.contains("`kubectl -n lab get svc web -o jsonpath='{.spec.healthCheckNodePort}'`"))
    #expect(
      fix.contains(#"`kubectl -n lab patch svc web -p '{"spec":{"externalTrafficPolicy":"Cluster"}}'`"#))
  }

  @Test func snatCollapseOnThisNodeNamesTheMasqueradedService() throws {
    let found = try findings("etp-cluster-masq", ["conntrack-L.txt", "iptables-save.txt", "node.pcap"])
    let collapse = try #require(found.first { $0["code"] as? String == "sources-collapsed-by-snat" })
    #expect(
      (collapse["remediation"] as? String)?.contains(
        #"`kubectl -n lab patch svc web -p '{"spec":{"externalTrafficPolicy":"Local"}}'`"#) == true)
  }
}
