import Foundation
import LBAnalysis
import LBConntrack
import LBCore
import LBReport
import Testing

/// A lab table as one node's report, read back from its JSON as `lbscope merge` reads it.
func nodeReport(_ path: String, node: String, firstLines: Int? = nil) throws -> NodeReport {
  var analyzer = ConnectionAnalyzer()
  let url = root.appendingPathComponent(path)
  var readPath = url.path
  if let firstLines {
    let text =
      try String(contentsOf: url, encoding: .utf8).split(separator: "\n").prefix(firstLines)
      .joined(separator: "\n") + "\n"
    readPath =
      FileManager.default.temporaryDirectory.appendingPathComponent("lbscope-\(UUID().uuidString)").path
    try Data(text.utf8).write(to: URL(fileURLWithPath: readPath))
  }
  defer { if firstLines != nil { try? FileManager.default.removeItem(atPath: readPath) } }
  var summary = try ConntrackReader().read(path: readPath, input: 0) { analyzer.add($0) }
  summary.path = path
  let bytes = JSONReport.document(analyzer.finish(inputs: [summary]), tool: ToolInfo(version: "test"))
    .renderedBytes()
  return try ReportReader(path: "\(node).json").read(bytes)
}

@Suite struct ReportReaderTests {
  /// Reading a report back and rendering it again gives the same bytes.
  @Test(arguments: ["uniform", "affinity-nat"])
  func readsBackWhatItWrote(scenario: String) throws {
    let result = try labResult(scenario)
    let bytes = JSONReport.document(result, tool: ToolInfo(version: "test")).renderedBytes()
    let node = try ReportReader(path: "reports/\(scenario).json").read(bytes)
    #expect(node.node == scenario)
    #expect(JSONReport.document(node.result, tool: ToolInfo(version: "test")).renderedBytes() == bytes)
  }

  @Test func namesTheFieldThatBreaksTheContract() throws {
    let good = JSONReport.render(try labResult("uniform"), tool: ToolInfo(version: "test"))
    let cases: [(String, String, String)] = [
      ("\"schemaVersion\": 1", "\"schemaVersion\": 2", "schemaVersion: is 2; this lbscope reads version 1"),
      ("\"address\": \"10.244.1.2:8080\"", "\"address\": \"10.244.1.2\"", "services[0].backends[0].address"),
      ("\"kind\": \"conntrack\"", "\"kind\": \"csv\"", "inputs[0].kind: unknown kind 'csv'"),
      ("\"protocol\": \"tcp\"", "\"protocol\": 6", "services[0].protocol: expected a string"),
    ]
    for (from, to, message) in cases {
      do {
        _ = try ReportReader(path: "x.json").read(Array(good.replacingOccurrences(of: from, with: to).utf8))
        Issue.record("\(to) was accepted")
      } catch let error as ReportReadError {
        #expect(error.description.hasPrefix("x.json: \(message)"), "\(error)")
      }
    }
  }

  @Test func takesTheNodeNameFromTheReportWhenItHasOne() throws {
    var text = JSONReport.render(try labResult("uniform"), tool: ToolInfo(version: "test"))
    text = text.replacingOccurrences(
      of: "\"schemaVersion\": 1", with: "\"node\": \"worker-7\", \"schemaVersion\": 1")
    #expect(try ReportReader(path: "a/b.json").read(Array(text.utf8)).node == "worker-7")
    #expect(ReportReader.nodeName(fromPath: "reports/node-a.json") == "node-a")
  }
}

@Suite struct ClusterMergerTests {
  let merger = ClusterMerger(options: AnalysisOptions())

  @Test func sumsTheSameServiceFromEveryNode() throws {
    let a = try nodeReport("captures/uniform/conntrack-L.txt", node: "node-a")
    let b = try nodeReport("captures/affinity-nat/conntrack-L.txt", node: "node-b")
    let cluster = merger.merge([b, a])
    let service = try #require(cluster.result.services.first)
    #expect(cluster.result.services.count == 1)
    #expect(service.connections == 150 + 165)
    #expect(service.backends.map(\.connections) == [39 + 15, 40 + 45, 35 + 105, 36])
    #expect(cluster.nodes.map(\.node) == ["node-a", "node-b"])
    #expect(cluster.serviceNodes[0].map(\.connections) == [150, 165])
    #expect(service.distribution.total == 315)
    #expect(service.distribution.imbalanced)
    // The cause one node shows is kept, named, and not replaced by a bare "imbalanced".
    #expect(cluster.result.findings.map(\.code) == ["affinity-concentrates-traffic"])
    #expect(cluster.result.findings.first?.summary.hasPrefix("on node(s) node-b: ") == true)
  }

  @Test func theOrderOfReportsDoesNotMatter() throws {
    let a = try nodeReport("captures/uniform/conntrack-L.txt", node: "node-a")
    let b = try nodeReport("captures/affinity-nat/conntrack-L.txt", node: "node-b")
    let c = try nodeReport("captures/affinity-nat/gateways/gw-1-conntrack-L.txt", node: "gw-1")
    let tool = ToolInfo(version: "test")
    let one = ClusterReport.document(merger.merge([a, b, c]), tool: tool).renderedBytes()
    let two = ClusterReport.document(merger.merge([c, b, a]), tool: tool).renderedBytes()
    #expect(one == two)
    #expect(
      ClusterReport.markdown(merger.merge([a, b, c]), tool: tool)
        == ClusterReport.markdown(merger.merge([b, c, a]), tool: tool))
  }

  @Test func flagsOneNodeTakingMostOfAService() throws {
    let busy = try nodeReport("captures/affinity-nat/conntrack-L.txt", node: "node-a")
    let quiet = try nodeReport("captures/uniform/conntrack-L.txt", node: "node-b", firstLines: 15)
    let cluster = merger.merge([busy, quiet])
    let skew = try #require(cluster.result.findings.first { $0.code == "node-traffic-skew" })
    #expect(skew.summary.contains("node node-a receives 91.7%"))
    #expect(skew.severity == .warning)
    #expect(skew.service == "tcp/10.96.0.10:80")
    // Near-even nodes are not skewed.
    let even = merger.merge([
      busy, try nodeReport("captures/uniform/conntrack-L.txt", node: "node-b"),
    ])
    #expect(!even.result.findings.contains { $0.code == "node-traffic-skew" })
  }

  @Test func mergesTranslatedSourcesByAddress() throws {
    let one = try nodeReport("captures/affinity-nat/gateways/gw-1-conntrack-L.txt", node: "gw-1")
    let two = try nodeReport("captures/affinity-nat/gateways/gw-1-conntrack-L.txt", node: "gw-1-again")
    let source = try #require(one.result.translatedSources.first)
    let merged = try #require(merger.merge([one, two]).result.translatedSources.first)
    #expect(merged.address == source.address)
    #expect(merged.connections == 2 * source.connections)
    #expect(merged.originalSourceCount == source.originalSourceCount)
    #expect(merged.originalSourceCountIsLowerBound, "two nodes may hide different sources behind it")
  }
}

@Suite struct ClusterReportServicesTests {
  /// Every service of a cluster report carries its per-node parts, however many services there
  /// are (services are rendered on several threads; the per-node parts go in before).
  @Test func everyServiceHasItsNodes() throws {
    // Three services in one table: two frontends of one pod set and a second service.
    let lines = [
      "tcp 6 100 ESTABLISHED src=10.0.0.1 dst=10.96.0.1 sport=1001 dport=80 src=10.244.1.2 dst=10.0.0.1 sport=8080 dport=1001 [ASSURED] mark=0 use=1",
      "tcp 6 100 ESTABLISHED src=10.0.0.2 dst=10.96.0.1 sport=1002 dport=80 src=10.244.1.3 dst=10.0.0.2 sport=8080 dport=1002 [ASSURED] mark=0 use=1",
      "tcp 6 100 ESTABLISHED src=10.0.0.1 dst=10.96.0.2 sport=1003 dport=443 src=10.244.2.2 dst=10.0.0.1 sport=8443 dport=1003 [ASSURED] mark=0 use=1",
      "udp 17 20 src=10.0.0.3 dst=10.96.0.10 sport=1004 dport=53 src=10.244.0.5 dst=10.0.0.3 sport=53 dport=1004 mark=0 use=1",
    ]
    func node(_ name: String, _ picked: [String]) throws -> NodeReport {
      var analyzer = ConnectionAnalyzer()
      let path = FileManager.default.temporaryDirectory.appendingPathComponent("lbscope-\(UUID().uuidString)")
      try Data((picked.joined(separator: "\n") + "\n").utf8).write(to: path)
      defer { try? FileManager.default.removeItem(at: path) }
      let summary = try ConntrackReader().read(path: path.path, input: 0) { analyzer.add($0) }
      let bytes = JSONReport.document(analyzer.finish(inputs: [summary]), tool: ToolInfo(version: "test"))
        .renderedBytes()
      return try ReportReader(path: "\(name).json").read(bytes)
    }
    let cluster = ClusterMerger(options: AnalysisOptions()).merge([
      try node("node-a", lines), try node("node-b", Array(lines.prefix(2))),
    ])
    #expect(cluster.result.services.count == 3)
    let bytes = ClusterReport.document(cluster, tool: ToolInfo(version: "test")).renderedBytes()
    guard case .object(let root) = try JSONParser().parse(bytes),
      case .array(let services)? = root["services"]
    else {
      Issue.record("no services array")
      return
    }
    #expect(services.count == 3)
    for service in services {
      guard case .object(let members) = service, case .array(let nodes)? = members["nodes"],
        case .array(let backends)? = members["backends"]
      else {
        Issue.record("a service without per-node parts")
        continue
      }
      #expect(!nodes.isEmpty)
      for backend in backends {
        guard case .object(let b) = backend else { continue }
        #expect(b["nodes"] != nil)
      }
    }
  }
}
