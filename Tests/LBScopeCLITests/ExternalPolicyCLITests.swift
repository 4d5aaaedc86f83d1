import Foundation
import Testing

/// `lbscope rules` on the lab's externalTrafficPolicy captures reports the findings an on-call
/// engineer needs: NodePort traffic dropped or rejected on a node without local endpoints, and
/// client addresses hidden by masquerade under policy Cluster.
@Suite struct ExternalPolicyCLITests {
  func findings(_ scenario: String) throws -> [String: String] {
    let run = try lbscope(["rules", "captures/\(scenario)/iptables-save.txt", "--format", "json"])
    #expect(run.status == 0, "\(scenario): \(run.stderr)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
    let list = try #require(json["findings"] as? [[String: Any]])
    var out: [String: String] = [:]
    for f in list {
      if let code = f["code"] as? String { out[code] = f["summary"] as? String ?? "" }
    }
    return out
  }

  @Test func noLocalEndpointsSaysDroppedOrRejected() throws {
    let drop = try findings("etp-local-none-drop")
    #expect(drop["no-local-endpoints"]?.contains("`*:30080`) is dropped") == true)
    let reject = try findings("etp-local-none-reject")
    #expect(reject["no-local-endpoints"]?.contains("`*:30080`) is rejected") == true)
    #expect(reject["no-endpoints"] != nil)
    #expect(try findings("etp-local").isEmpty)
  }

  @Test func clusterPolicyNodePortHidesTheClientAddress() throws {
    let masq = try findings("etp-cluster-masq")
    #expect(masq["masquerade-hides-client-ip"]?.contains("externalTrafficPolicy Cluster") == true)
    #expect(masq.count == 1)
  }
}
