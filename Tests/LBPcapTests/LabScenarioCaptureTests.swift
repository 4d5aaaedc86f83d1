import Foundation
import LBAnalysis
import LBCore
import LBPcap
import Testing

/// The stale-failing and long-lived lab captures (`scripts/lab.d/stale-failing.sh`,
/// `long-lived.sh`) against what the clients saw (`truth.json`): every packet tcpdump captured
/// is in the file, the client → backend mapping, connections, failures and HTTP requests per
/// backend.
@Suite struct LabScenarioCaptureTests {
  struct Truth: Decodable {
    struct Connection: Decodable {
      var backend: String?
      var localPort: Int
      var seenAs: String
      var ok: Bool
      var failure: String?
      var requests: Int?
    }
    /// tcpdump's own statistics, printed when it stopped, and the records in node.pcap.
    struct Capture: Decodable {
      var captured: Int
      var droppedByKernel: Int
      var packets: Int
    }
    var connections: [Connection]
    var backends: [String: Int]
    var capture: Capture
    var failures: [String: Int]?
    var attempts: [String: Int]?
    var requests: [String: Int]?
  }

  static let scenarios = ["stale-failing", "long-lived"]

  func truth(_ scenario: String) throws -> Truth {
    let data = try Data(contentsOf: capturesRoot.appendingPathComponent("\(scenario)/truth.json"))
    return try JSONDecoder().decode(Truth.self, from: data)
  }

  func pcap(_ scenario: String) -> String {
    capturesRoot.appendingPathComponent("\(scenario)/node.pcap").path
  }

  /// Connections per backend the clients made, served or refused.
  func attempts(_ truth: Truth) -> [String: Int] {
    truth.attempts ?? truth.backends
  }

  /// tcpdump stopped only after the kernel had handed it every packet: nothing dropped, and
  /// the file holds exactly what tcpdump counted.
  @Test(arguments: scenarios)
  func captureHoldsEveryPacketTcpdumpCaptured(_ scenario: String) throws {
    let truth = try truth(scenario)
    #expect(truth.capture.droppedByKernel == 0)
    #expect(truth.capture.packets == truth.capture.captured)
    let reading = try readCapture(pcap(scenario))
    #expect(reading.packets == truth.capture.captured)
    #expect(reading.summary.truncated == 0 && reading.summary.malformed == 0)
  }

  @Test(arguments: scenarios)
  func clientToBackendMappingAgreesWithTruth(_ scenario: String) throws {
    let truth = try truth(scenario)
    let (observed, trace) = try observations([pcap(scenario)])
    var truthBackend: [String: String] = [:]
    for c in truth.connections {
      if let backend = c.backend { truthBackend["\(c.seenAs):\(c.localPort)"] = backend }
    }
    let service = observed.filter(\.isDestinationTranslated)
    // Every connection a client made is in the capture (refused ones included), both legs joined.
    #expect(service.count == truth.connections.count)
    #expect(trace.totals.joinedConnections == service.count)
    let agree = service.filter { truthBackend["\($0.client)"] == "\($0.backend)" }.count
    #expect(Double(agree) >= 0.99 * Double(truth.connections.count), "\(agree) of \(truth.connections.count)")

    var perBackend: [String: Int] = [:]
    for o in service { perBackend["\(o.backend)", default: 0] += 1 }
    #expect(perBackend == attempts(truth).filter { $0.value > 0 })
  }

  /// Failures per backend equal the refusals the clients saw; served connections all have a
  /// handshake time.
  @Test(arguments: scenarios)
  func failuresPerBackendEqualTruth(_ scenario: String) throws {
    let truth = try truth(scenario)
    let (observed, _) = try observations([pcap(scenario)])
    let service = observed.filter(\.isDestinationTranslated)
    var failed: [String: Int] = [:]
    for o in service where o.failed { failed["\(o.backend)", default: 0] += 1 }
    let expected = (truth.failures ?? [:]).filter { $0.value > 0 }
    #expect(failed == expected)
    #expect(service.filter { !$0.failed }.allSatisfy { $0.handshakeRTTNanos != nil })
    if scenario == "stale-failing" { #expect(!expected.isEmpty) }
  }

  @Test func stalefailingAnalysisFindsTheFailingBackendAndNoWorkSkew() throws {
    let truth = try truth("stale-failing")
    let (observed, _) = try observations([pcap("stale-failing")])
    var analyzer = ConnectionAnalyzer()
    for o in observed { analyzer.add(o) }
    let result = analyzer.finish(inputs: [])
    let failing = try #require((truth.failures ?? [:]).first { $0.value > 0 }?.key)
    let finding = try #require(result.findings.first { $0.code == "backend-failing" })
    #expect(finding.summary.contains(failing))
    #expect(finding.severity == .critical)
    // Refused connections carry no bytes or requests by nature: that is no long-lived skew.
    #expect(!result.findings.contains { $0.code == "long-lived-connections-skew" })
  }

  /// HTTP requests per backend equal what the clients sent, keep-alive connections included.
  @Test func longLivedRequestsPerBackendEqualTruth() throws {
    let truth = try truth("long-lived")
    let expected = try #require(truth.requests)
    let (observed, _) = try observations([pcap("long-lived")])
    var requests: [String: Int] = [:]
    for o in observed where o.isDestinationTranslated {
      requests["\(o.backend)", default: 0] += o.httpRequests ?? 0
    }
    #expect(requests == expected.filter { $0.value > 0 })
    #expect(truth.connections.contains { ($0.requests ?? 0) > 1 })
  }

  @Test func longLivedAnalysisNamesTheBusiestBackend() throws {
    let truth = try truth("long-lived")
    let busiest = try #require(truth.requests?.max { $0.value < $1.value }?.key)
    let (observed, _) = try observations([pcap("long-lived")])
    var analyzer = ConnectionAnalyzer()
    for o in observed { analyzer.add(o) }
    let result = analyzer.finish(inputs: [])
    #expect(result.services.first?.distribution.imbalanced == false)
    let skew = try #require(result.findings.first { $0.code == "long-lived-connections-skew" })
    #expect(skew.summary.contains("\(busiest) has"), "\(skew.summary)")
    #expect(skew.evidence.first?.hasPrefix(busiest) == true)
  }
}

/// The per-connection skew detector on crafted observations: work is compared per served
/// connection.
@Suite struct PerConnectionSkewTests {
  func observation(backend: Int, client: UInt8, port: UInt16, refused: Bool = false) -> ConnectionObservation
  {
    let vip = Endpoint(.v4(IPv4Address(10, 96, 0, 10)), 80)
    let src = Endpoint(.v4(IPv4Address(192, 168, 50, client)), port)
    let pod = Endpoint(.v4(IPv4Address(10, 244, 1, UInt8(backend))), 8080)
    // A refused connection: SYN (60 bytes) answered by RST (40 bytes), never established.
    var o = ConnectionObservation(
      original: FiveTuple(proto: .tcp, source: src, destination: vip),
      translated: FiveTuple(proto: .tcp, source: src, destination: pod), state: refused ? .close : .timeWait,
      replied: true, assured: !refused,
      originalCounters: Counters(packets: refused ? 1 : 6, bytes: refused ? 60 : 500),
      replyCounters: Counters(packets: refused ? 1 : 5, bytes: refused ? 40 : 700))
    o.httpRequests = refused ? nil : 1
    o.handshakeRTTNanos = refused ? nil : 100_000
    return o
  }

  @Test func refusedConnectionsAreNoWorkSkew() {
    var analyzer = ConnectionAnalyzer()
    for i in 0..<200 {
      let backend = 2 + i % 4
      analyzer.add(
        observation(
          backend: backend, client: UInt8(10 + i % 7), port: UInt16(40000 + i), refused: backend == 5))
    }
    let result = analyzer.finish(inputs: [])
    #expect(result.services.first?.distribution.imbalanced == false)
    #expect(result.findings.contains { $0.code == "backend-failing" })
    #expect(!result.findings.contains { $0.code == "long-lived-connections-skew" })
  }

  @Test func aMostlyFailingBackendIsJudgedOnItsServedConnections() {
    var analyzer = ConnectionAnalyzer()
    for i in 0..<200 {
      let backend = 2 + i % 4
      analyzer.add(
        observation(
          backend: backend, client: UInt8(10 + i % 7), port: UInt16(40000 + i),
          refused: backend == 3 && i % 16 != 1))
    }
    #expect(!analyzer.finish(inputs: []).findings.contains { $0.code == "long-lived-connections-skew" })
  }

  @Test func busierBackendLeadsTheEvidence() {
    var analyzer = ConnectionAnalyzer()
    for i in 0..<200 {
      let backend = 2 + i % 4
      var o = observation(backend: backend, client: UInt8(10 + i % 7), port: UInt16(40000 + i))
      if backend == 4 && i < 20 { o.httpRequests = 40 }
      analyzer.add(o)
    }
    let skew = analyzer.finish(inputs: []).findings.first { $0.code == "long-lived-connections-skew" }
    #expect(
      skew?.summary.contains("10.244.1.4:8080 has 25% of connections") == true, "\(String(describing: skew))")
    #expect(skew?.evidence.first?.hasPrefix("10.244.1.4:8080") == true)
  }
}
