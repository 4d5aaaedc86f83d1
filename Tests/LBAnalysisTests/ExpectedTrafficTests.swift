import LBAnalysis
import LBCore
import Testing

/// Under externalTrafficPolicy Local, connections to the cluster IP and to a NodePort have
/// different expected shares; the incident report judges what it saw against the mix it saw.
@Suite struct ExpectedTrafficTests {
  static let clusterIP = Endpoint("10.96.0.10:80")!
  static let nodeAddress = Endpoint("192.168.50.1:30080")!
  static let backends = (2...5).map { Endpoint("10.244.1.\($0):8080")! }

  /// Four endpoints, two on this node: cluster-IP traffic 25% each, NodePort traffic 50% to
  /// each local one.
  static let rule = ServiceRule(
    name: "lab/web:http", proto: .tcp,
    frontends: [
      ServiceFrontend(address: clusterIP.address, port: 80, kind: .clusterIP),
      ServiceFrontend(address: nil, port: 30080, kind: .nodePort),
    ],
    backends: backends.enumerated().map { i, b in
      BackendRule(
        endpoint: b, expectedShare: 0.25, expectedShareExternal: i < 2 ? 0.5 : 0, isLocal: i < 2,
        location: SourceLocation(input: 1, line: 10 + i))
    },
    externalTrafficPolicy: .local, source: .iptables, location: SourceLocation(input: 1, line: 9))

  /// `perBackend[i]` connections to backend i through `frontend`.
  func connections(_ frontend: Endpoint, _ perBackend: [Int], into analyzer: inout ConnectionAnalyzer) {
    var port: UInt16 = frontend == Self.clusterIP ? 30000 : 40000
    for (i, n) in perBackend.enumerated() {
      for _ in 0..<n {
        port += 1
        let client = Endpoint("192.168.50.11:\(port)")!
        analyzer.add(
          ConnectionObservation(
            conntrackOriginal: FiveTuple(proto: .tcp, source: client, destination: frontend),
            reply: FiveTuple(proto: .tcp, source: Self.backends[i], destination: client),
            state: .timeWait, replied: true, assured: true,
            location: SourceLocation(input: 0, line: Int(port))))
      }
    }
  }

  func correlate(cluster: [Int], external: [Int]) -> ServiceResult? {
    var analyzer = ConnectionAnalyzer()
    connections(Self.clusterIP, cluster, into: &analyzer)
    connections(Self.nodeAddress, external, into: &analyzer)
    let source = ObservedSource(name: "conntrack", paths: ["t"], result: analyzer.finish(inputs: []))
    let incident = IncidentCorrelator(options: AnalysisOptions()).correlate(
      observed: [source], rules: RuleSet(services: [Self.rule]), inputs: [])
    return incident.analysis.services.first
  }

  /// 40 connections to the cluster IP (10 each) and 40 to the NodePort (20 to each local
  /// endpoint): 30/30/10/10 is exactly what the rules give this mix. Judged against the
  /// cluster-wide 25% each it would be "imbalanced" (χ² = 20, df 3, p ≈ 0.0002, w = 0.5).
  @Test func mixedTrafficIsJudgedAgainstTheWeightedShares() throws {
    let s = try #require(correlate(cluster: [10, 10, 10, 10], external: [20, 20, 0, 0]))
    #expect(s.frontendTraffic == FrontendTraffic(clusterIP: 40, external: 40))
    #expect(s.backends.map(\.expectedShareForTraffic) == [0.375, 0.375, 0.125, 0.125])
    #expect(s.backends.map(\.connections) == [30, 30, 10, 10])
    #expect(!s.distribution.imbalanced, "\(s.distribution.verdict)")
    #expect((s.distribution.pValue ?? 0) > 0.5)
    #expect(s.distribution.expectation.contains("mix of 40 cluster-IP and 40 NodePort/external"))
  }

  @Test func externalOnlyTrafficIsJudgedAgainstTheLocalEndpoints() throws {
    let s = try #require(correlate(cluster: [0, 0, 0, 0], external: [20, 20, 0, 0]))
    #expect(s.frontendTraffic == FrontendTraffic(clusterIP: 0, external: 40))
    #expect(s.backends.map(\.expectedShareForTraffic) == [0.5, 0.5, 0, 0])
    #expect(!s.distribution.imbalanced)
  }

  /// NodePort traffic that reaches a remote endpoint is not what this node's rules do.
  @Test func externalTrafficOnRemoteEndpointsIsImbalanced() throws {
    let s = try #require(correlate(cluster: [0, 0, 0, 0], external: [10, 10, 10, 10]))
    #expect(s.distribution.imbalanced, "\(s.distribution.verdict)")
  }

  @Test func clusterIPTrafficKeepsTheClusterShares() throws {
    let s = try #require(correlate(cluster: [10, 10, 10, 10], external: [0, 0, 0, 0]))
    #expect(s.backends.map(\.expectedShareForTraffic) == [0.25, 0.25, 0.25, 0.25])
    #expect(!s.distribution.imbalanced)
  }
}
