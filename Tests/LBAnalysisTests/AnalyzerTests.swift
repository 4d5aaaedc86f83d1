import Foundation
import LBAnalysis
import LBConntrack
import LBCore
import Testing

let labRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("captures")

func analyse(_ paths: [String], options: AnalysisOptions = AnalysisOptions()) throws -> AnalysisResult {
  var analyzer = ConnectionAnalyzer(options: options)
  var summaries: [InputSummary] = []
  for (i, path) in paths.enumerated() {
    summaries.append(try ConntrackReader().read(path: path, input: i) { analyzer.add($0) })
  }
  return analyzer.finish(inputs: summaries)
}

func truth(_ scenario: String) throws -> [String: Any] {
  let data = try Data(contentsOf: labRoot.appendingPathComponent("\(scenario)/truth.json"))
  return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

@Suite struct ConnectionAnalyzerTests {
  @Test func stickyVerdictsMatchTheLabTruthForEverySource() throws {
    for scenario in ["affinity-nat", "uniform"] {
      let result = try analyse([labRoot.appendingPathComponent("\(scenario)/conntrack-L.txt").path])
      let service = try #require(result.services.first { $0.frontends.first?.description == "10.96.0.10:80" })
      let sources = try #require(try truth(scenario)["sources"] as? [[String: Any]])
      #expect(sources.count == service.clients.count)
      for source in sources {
        let address = try #require(source["address"] as? String)
        let client = try #require(service.clients.first { $0.address.description == address })
        #expect(client.sticky == (source["sticky"] as? Bool), "\(scenario) \(address)")
        #expect(client.connections == source["connections"] as? Int)
      }
    }
  }

  @Test func affinityScenarioBlamesStickyClientsNotAGenericImbalance() throws {
    let result = try analyse([labRoot.appendingPathComponent("affinity-nat/conntrack-L.txt").path])
    #expect(result.findings.first?.code == "affinity-concentrates-traffic")
    #expect(!result.findings.contains { $0.code == "imbalanced-distribution" })
  }

  @Test func uniformScenarioHasNoWarningOrCriticalFinding() throws {
    let result = try analyse([labRoot.appendingPathComponent("uniform/conntrack-L.txt").path])
    #expect(result.findings.allSatisfy { $0.severity == .info })
    #expect(result.services.first?.distribution.imbalanced == false)
    #expect(result.services.first?.distribution.judged == true)
  }

  @Test func gatewayTablesReportCollapsedSources() throws {
    let paths = ["gw-1", "gw-2", "gw-3"].map {
      labRoot.appendingPathComponent("affinity-nat/gateways/\($0)-conntrack-L.txt").path
    }
    let result = try analyse(paths)
    #expect(
      result.translatedSources.map(\.address.description) == [
        "192.168.50.21", "192.168.50.22", "192.168.50.23",
      ])
    #expect(result.translatedSources.allSatisfy { $0.originalSourceCount == 3 && $0.connections == 45 })
    #expect(result.findings.filter { $0.code == "sources-collapsed-by-snat" }.count == 3)
  }

  @Test func serviceFilterKeepsOnlyThatFrontend() throws {
    var options = AnalysisOptions()
    options.service = Endpoint("10.0.0.10:53")
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent(
        "shared/corpus/conntrack/k8s-issue91216_conntrack-L_dns-tcp-time-wait-to-kube-dns_first-line-cut_PARTIAL.txt"
      ).path
    let result = try analyse([path], options: options)
    #expect(result.services.count == 1)
    #expect(result.services[0].backends.map(\.connections) == [3, 2])
    #expect(result.findings.contains { $0.code == "capture-incomplete" })
  }

  @Test func failingBackendIsNamed() {
    var analyzer = ConnectionAnalyzer()
    let vip = Endpoint("10.96.0.10:80")!
    for i in 0..<40 {
      let client = Endpoint(.v4(IPv4Address(0xC0A8_3200 + UInt32(i % 8))), UInt16(40000 + i))
      let backend = Endpoint("10.244.1.\(2 + i % 4):8080")!
      let bad = backend.description == "10.244.1.5:8080"
      let o = ConnectionObservation(
        conntrackOriginal: FiveTuple(proto: .tcp, source: client, destination: vip),
        reply: FiveTuple(proto: .tcp, source: backend, destination: client),
        state: bad ? .synSent : .timeWait, replied: !bad, assured: !bad,
        location: SourceLocation(input: 0, line: i + 1))
      analyzer.add(o)
    }
    let result = analyzer.finish(inputs: [])
    let failing = result.findings.filter { $0.code == "backend-failing" }
    #expect(failing.count == 1)
    #expect(failing.first?.severity == .critical)
    #expect(failing.first?.summary.contains("10.244.1.5:8080") == true)
  }
}
