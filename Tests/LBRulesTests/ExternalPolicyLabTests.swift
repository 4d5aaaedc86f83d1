import Foundation
import LBAnalysis
import LBCore
import LBRules
import Testing

/// The lab's externalTrafficPolicy captures (scripts/lab.d/external-policy.sh): NodePort traffic
/// from LAN clients under policy Local with and without local endpoints, and under policy
/// Cluster, decoded from iptables-save and held against the lab's truth.json.
@Suite struct ExternalPolicyLabTests {
  static let scenarios = ["etp-local", "etp-local-none-drop", "etp-local-none-reject", "etp-cluster-masq"]

  func service(_ scenario: String) throws -> (ServiceRule, RulesReadResult) {
    let path = capturesRoot.appendingPathComponent(scenario).appendingPathComponent("iptables-save.txt").path
    let result = try RulesReader.read(paths: [path], options: RulesReadOptions(keepIptablesDumps: true))
    #expect(result.ruleSet.inputs.allSatisfy { $0.issueCount == 0 })
    #expect(result.ruleSet.services.count == 1)
    return (try #require(result.ruleSet.services.first { $0.name == "lab/web:http" }), result)
  }

  func expected(_ scenario: String) throws -> [String: Any] {
    try #require(try truth(scenario)["service"] as? [String: Any])
  }

  @Test(arguments: scenarios)
  func frontendsPolicyAndNoEndpointActionsMatchTheTruth(_ scenario: String) throws {
    let (s, _) = try service(scenario)
    let want = try expected(scenario)
    let frontends = try #require(want["frontends"] as? [[String: String]])
    #expect(
      Set(s.frontends.map { "\($0.description) \($0.kind.rawValue)" })
        == Set(frontends.map { "\($0["address"] ?? "") \($0["kind"] ?? "")" }), "\(scenario)")
    #expect(s.externalTrafficPolicy?.rawValue == want["externalTrafficPolicy"] as? String)
    #expect(s.noLocalEndpoints?.rawValue == want["noLocalEndpoints"] as? String, "\(scenario)")
    #expect(s.noEndpoints?.rawValue == want["noEndpoints"] as? String, "\(scenario)")
    let reasons = try #require(want["masquerade"] as? [String])
    #expect(Set(s.masquerade.map(\.rawValue)) == Set(reasons), "\(scenario)")
  }

  @Test(arguments: scenarios)
  func externalSharesGoOnlyToLocalEndpoints(_ scenario: String) throws {
    let (s, _) = try service(scenario)
    let want = try #require(try expected(scenario)["backends"] as? [[String: Any]])
    #expect(s.backends.map(\.endpoint.description) == want.compactMap { $0["address"] as? String })
    for (got, b) in zip(s.backends, want) {
      let share = try #require(b["expectedShare"] as? Double)
      let external = try #require(b["expectedShareExternal"] as? Double)
      #expect(abs((got.expectedShare ?? -1) - share) < 1e-9, "\(scenario) \(got.endpoint)")
      #expect(
        abs((got.expectedShareExternal ?? -1) - external) < 1e-9, "\(scenario) \(got.endpoint) external")
      #expect(got.isLocal == b["local"] as? Bool, "\(scenario) \(got.endpoint) local")
    }
    // Under policy Local the external shares sum to 1 over the local endpoints, or to 0 when there
    // are none; the cluster shares always cover every endpoint.
    let externalSum = s.backends.reduce(0.0) { $0 + ($1.expectedShareExternal ?? 0) }
    let anyLocal = want.contains { $0["local"] as? Bool ?? true }
    #expect(abs(externalSum - (anyLocal && !want.isEmpty ? 1 : 0)) < 1e-9, "\(scenario)")
  }

  /// The nat DNAT counters count the NodePort connections: equal to what the clients reached.
  @Test(arguments: scenarios)
  func dnatCountersEqualTheConnectionsTheClientsMade(_ scenario: String) throws {
    let (s, _) = try service(scenario)
    let counts = try #require(try truth(scenario)["backends"] as? [String: Int])
    #expect(Set(counts.keys) == Set(s.backends.map(\.endpoint.description)))
    for b in s.backends {
      #expect(b.observedConnections == counts[b.endpoint.description].map(UInt64.init), "\(b.endpoint)")
    }
  }

  /// `no-local-endpoints` is reported exactly where the clients' connections failed, and says
  /// dropped where they timed out and rejected where they were refused.
  @Test(arguments: scenarios)
  func noLocalEndpointsFindingMatchesHowTheClientsFailed(_ scenario: String) throws {
    let (s, _) = try service(scenario)
    let connections = try #require(try truth(scenario)["connections"] as? [[String: Any]])
    let failures = Set(connections.compactMap { $0["failure"] as? String })
    let finding = RulesAnalyzer.analyze(RuleSet(services: [s])).findings.first {
      $0.code == "no-local-endpoints"
    }
    switch failures {
    case []: #expect(finding == nil, "\(scenario)")
    case ["timeout"]: #expect(finding?.summary.contains("is dropped") == true, "\(scenario)")
    case ["refused"]: #expect(finding?.summary.contains("is rejected") == true, "\(scenario)")
    default: Issue.record("\(scenario): unexpected failures \(failures)")
    }
    // The finding names the external frontend, never the cluster IP.
    if let finding { #expect(!finding.summary.contains("10.96.0.10:80")) }
  }

  /// `masquerade-hides-client-ip` is reported exactly where the pods saw another address than
  /// the client's (the node's cni0 address under policy Cluster).
  @Test(arguments: scenarios)
  func masqueradeFindingMatchesWhatThePodsSaw(_ scenario: String) throws {
    let (s, _) = try service(scenario)
    let connections = try #require(try truth(scenario)["connections"] as? [[String: Any]])
    let served = connections.filter { $0["ok"] as? Bool == true }
    let hidden = served.contains { $0["backendSaw"] as? String != $0["seenAs"] as? String }
    let finding = RulesAnalyzer.analyze(RuleSet(services: [s])).findings.first {
      $0.code == "masquerade-hides-client-ip"
    }
    #expect((finding != nil) == hidden, "\(scenario)")
    if hidden { #expect(served.allSatisfy { $0["backendSaw"] as? String == "10.244.1.1" }) }
  }

  /// The DNAT counters of a policy-Local service mix cluster and external traffic, so they are
  /// not judged against either set of shares (the lab's 40 NodePort connections all went to the
  /// two local endpoints, which the cluster shares would call imbalanced).
  @Test func localPolicyCountersAreNotJudgedAgainstClusterShares() throws {
    let (s, _) = try service("etp-local")
    let analysis = RulesAnalyzer.analyze(RuleSet(services: [s]))
    #expect(!analysis.findings.contains { $0.code == "imbalanced-distribution" })
    let d = try #require(analysis.distributions.first ?? nil)
    #expect(!d.judged)
    #expect(d.verdict.contains("externalTrafficPolicy Local"))
    // Policy Cluster: the same counters are judged (and fit the equal shares).
    let (cluster, _) = try service("etp-cluster-masq")
    #expect((RulesAnalyzer.analyze(RuleSet(services: [cluster])).distributions.first ?? nil)?.judged == true)
  }
}
