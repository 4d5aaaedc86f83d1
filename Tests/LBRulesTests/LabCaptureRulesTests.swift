import Foundation
import LBAnalysis
import LBCore
import LBRules
import Testing

/// The lab's captures decoded against what the lab knows it did (truth.json).
@Suite struct LabCaptureRulesTests {
  /// Every capture whose node ran kube-proxy's iptables mode (a non-empty iptables-save.txt);
  /// the nftables-mode scenario is checked by NFTLabTests.
  static let scenarios = files(in: capturesRoot).filter {
    let path = $0.appendingPathComponent("iptables-save.txt").path
    return ((try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0) > 0
  }.map(\.lastPathComponent)

  func read(_ scenario: String) throws -> RulesReadResult {
    let dir = capturesRoot.appendingPathComponent(scenario)
    var paths = [dir.appendingPathComponent("iptables-save.txt").path]
    let recent = dir.appendingPathComponent("xt_recent")
    if FileManager.default.fileExists(atPath: recent.path) { paths.append(recent.path) }
    return try RulesReader.read(paths: paths, options: RulesReadOptions(keepIptablesDumps: true))
  }

  @Test func labCapturesArePresent() {
    #expect(Self.scenarios.contains("uniform") && Self.scenarios.contains("affinity-nat"))
  }

  @Test(arguments: scenarios)
  func decodedServiceMatchesTheLabsTruth(_ scenario: String) throws {
    let truth = try truth(scenario)
    let result = try read(scenario)
    #expect(result.ruleSet.inputs.allSatisfy { $0.issueCount == 0 })
    let expected = try #require(truth["service"] as? [String: Any])
    let name = try #require(expected["name"] as? String)
    let s = try #require(result.ruleSet.services.first { $0.name == name })
    #expect(s.proto.description == expected["protocol"] as? String)
    let vip = try #require(expected["clusterIP"] as? String)
    let port = try #require(expected["port"] as? Int)
    #expect(s.frontends.contains { $0.description == "\(vip):\(port)" && $0.kind == .clusterIP })

    // Expected shares to 1e-9, by backend address.
    let backends = try #require(expected["backends"] as? [[String: Any]])
    let byAddress = Dictionary(uniqueKeysWithValues: s.backends.map { ($0.endpoint.description, $0) })
    let truthAddresses = backends.compactMap { $0["address"] as? String }.filter {
      byAddress[$0] != nil || true
    }
    let live = truthAddresses.filter { addr in
      backends.first { $0["address"] as? String == addr }?["expectedShare"] as? Double ?? 0 > 0
    }
    #expect(Set(byAddress.keys).isSuperset(of: live))
    for b in backends {
      guard let address = b["address"] as? String, let share = b["expectedShare"] as? Double else { continue }
      let got = byAddress[address]?.expectedShare ?? 0
      #expect(abs(got - share) < 1e-9, "\(scenario) \(address): \(got) vs \(share)")
      if let external = b["expectedShareExternal"] as? Double {
        #expect(
          abs((byAddress[address]?.expectedShareExternal ?? -1) - external) < 1e-9,
          "\(scenario) \(address) external")
      }
    }

    // Affinity and its timeout.
    if let affinity = expected["affinity"] as? [String: Any] {
      #expect(s.affinity?.timeoutSeconds == affinity["timeoutSeconds"] as? Int)
    } else {
      #expect(s.affinity == nil)
    }

    // Policy: the rules show it only when the service has an external frontend.
    let policy = expected["externalTrafficPolicy"] as? String
    if s.frontends.contains(where: { $0.kind != .clusterIP }) {
      #expect(s.externalTrafficPolicy?.rawValue == policy)
    } else {
      #expect(s.externalTrafficPolicy == nil)
    }
    if let action = expected["noLocalEndpoints"] as? String {
      #expect(s.noLocalEndpoints?.rawValue == action)
    }

    // The nat DNAT counters count new connections: equal to the connections the clients made
    // and that were translated (truth.backends; truth.attempts where a backend refused some
    // after DNAT), when no connection failed before DNAT.
    if let counts = (truth["attempts"] ?? truth["backends"]) as? [String: Int], expected["refusing"] == nil {
      for (address, n) in counts {
        #expect(byAddress[address]?.observedConnections == UInt64(n), "\(scenario) \(address) counter")
      }
    }

    // Pinned clients equal the recorded xt_recent contents: one per source address, pinned to
    // the backend all its connections reached.
    if expected["affinity"] is [String: Any], let sources = truth["sources"] as? [[String: Any]] {
      var want = Set<String>()
      for source in sources {
        guard let address = source["address"] as? String, let reached = source["backends"] as? [String: Int],
          let backend = reached.keys.first
        else { continue }
        want.insert("\(address)->\(backend)")
      }
      let got = Set(s.pinnedClients.map { "\($0.client)->\($0.backend?.description ?? "?")" })
      #expect(got == want)
      #expect(s.pinnedClients.allSatisfy { ($0.lastSeenAgeSeconds ?? -1) >= 0 })
      #expect(result.clockSource?.hasSuffix("jiffies.txt") == true)
    }
  }

  @Test func affinityCaptureAgesComeFromJiffiesBesideTheLists() throws {
    let result = try read("affinity-nat")
    let s = try #require(result.ruleSet.services.first)
    // jiffies.txt: 4295055139 at HZ 250; 192.168.50.12 was last seen at 4295055103.
    let pin = try #require(s.pinnedClients.first { $0.client.description == "192.168.50.12" })
    #expect(pin.lastSeenJiffies == 4_295_055_103)
    #expect(abs((pin.lastSeenAgeSeconds ?? 0) - 36.0 / 250) < 1e-9)
    #expect(abs((pin.expiresInSeconds ?? 0) - (10800 - 36.0 / 250)) < 1e-6)
    #expect(pin.hits == 15)
  }

  @Test func clockGivenOnTheCommandLineWins() throws {
    let dir = capturesRoot.appendingPathComponent("affinity-nat")
    let result = try RulesReader.read(
      paths: [
        dir.appendingPathComponent("iptables-save.txt").path, dir.appendingPathComponent("xt_recent").path,
      ],
      options: RulesReadOptions(clock: JiffiesClock(jiffies: 4_295_055_103 + 1000, hz: 100)))
    let pin = try #require(
      result.ruleSet.services.first?.pinnedClients.first { $0.client.description == "192.168.50.12" })
    #expect(pin.lastSeenAgeSeconds == 10)
  }

  @Test func traceOfANewClientSplitsEquallyOverTheFourBackends() throws {
    let result = try read("uniform")
    let dump = try #require(result.iptablesDumps.first)
    let trace = IptablesTrace(dump: dump).trace(
      source: try #require(Endpoint("192.168.50.99:40000")),
      destination: try #require(Endpoint("10.96.0.10:80")))
    let dnat = trace.outcomes.filter { $0.verdict == "dnat" }
    #expect(dnat.count == 4)
    for o in dnat { #expect(abs(o.chance - 0.25) < 1e-9) }
    #expect(trace.steps.contains { $0.chain == "KUBE-SERVICES" })
    #expect(trace.steps.contains { $0.chain == "KUBE-SVC-NAVV37HDGJLPWY47" })
  }

  @Test func traceOfAPinnedClientFollowsItsAffinityList() throws {
    let result = try read("affinity-nat")
    let dump = try #require(result.iptablesDumps.first)
    let walker = IptablesTrace(dump: dump, recentLists: RulesReader.recentLists(result.ruleSet))
    let pinned = walker.trace(
      source: try #require(Endpoint("192.168.50.12:40000")),
      destination: try #require(Endpoint("10.96.0.10:80")))
    #expect(pinned.outcomes.map { $0.destination?.description } == ["10.244.1.2:8080"])
    #expect(pinned.outcomes.first?.chance == 1)
    let fresh = walker.trace(
      source: try #require(Endpoint("192.168.50.99:40000")),
      destination: try #require(Endpoint("10.96.0.10:80")))
    #expect(fresh.outcomes.count == 4)
    let other = walker.trace(
      source: try #require(Endpoint("192.168.50.99:40000")),
      destination: try #require(Endpoint("10.96.0.11:80")))
    #expect(other.outcomes.map(\.verdict) == ["accept"])
    #expect(other.outcomes.first?.destination == nil)
  }

  @Test func affinityCountersGiveAnAffinityFinding() throws {
    let result = try read("affinity-nat")
    let analysis = RulesAnalyzer.analyze(result.ruleSet)
    #expect(analysis.findings.contains { $0.code == "affinity-concentrates-traffic" })
    #expect(!analysis.findings.contains { $0.code == "stale-probabilities" })
    let uniform = RulesAnalyzer.analyze(try read("uniform").ruleSet)
    #expect(uniform.findings.isEmpty)
  }

  @Test func staleProbabilitiesCaptureGivesTheFindingAndTheLabsShares() throws {
    let result = try read("stale-probabilities")
    let s = try #require(result.ruleSet.services.first)
    let shares = s.backends.map { $0.expectedShare ?? 0 }
    for (got, want) in zip(shares, [0.2, 0.2, 0.2, 0.4]) { #expect(abs(got - want) < 1e-9) }
    let analysis = RulesAnalyzer.analyze(result.ruleSet)
    let finding = try #require(analysis.findings.first { $0.code == "stale-probabilities" })
    #expect(finding.severity == .warning && finding.service == "lab/web:http")
    // The DNAT counters fit the stale shares, not an equal split: no imbalance finding.
    #expect(!analysis.findings.contains { $0.code == "imbalanced-distribution" })
  }
}
