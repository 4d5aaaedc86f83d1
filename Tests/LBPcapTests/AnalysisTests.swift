import LBAnalysis
import LBCore
import LBPcap
import Testing

/// What the analysis makes of the measures only traces give: RTT percentiles, HTTP requests,
/// and the per-connection skew finding.
@Suite struct TraceAnalysisTests {
  func observation(backend: Int, client: UInt8, port: UInt16, bytes: UInt64, requests: Int, rtt: Int64)
    -> ConnectionObservation
  {
    let vip = Endpoint(.v4(IPv4Address(10, 96, 0, 10)), 80)
    let src = Endpoint(.v4(IPv4Address(192, 168, 50, client)), port)
    let pod = Endpoint(.v4(IPv4Address(10, 244, 1, UInt8(backend))), 8080)
    var o = ConnectionObservation(
      original: FiveTuple(proto: .tcp, source: src, destination: vip),
      translated: FiveTuple(proto: .tcp, source: src, destination: pod), state: .timeWait, replied: true,
      assured: true, originalCounters: Counters(packets: 10, bytes: bytes / 2),
      replyCounters: Counters(packets: 10, bytes: bytes / 2))
    o.httpRequests = requests
    o.handshakeRTTNanos = rtt
    return o
  }

  @Test func balancedConnectionsWithSkewedBytesAreFound() {
    var analyzer = ConnectionAnalyzer()
    for i in 0..<200 {
      let backend = 2 + i % 4
      let heavy = backend == 2
      analyzer.add(
        observation(
          backend: backend, client: UInt8(10 + i % 7), port: UInt16(40000 + i),
          bytes: heavy ? 1_000_000 : 10_000,
          requests: heavy ? 500 : 5, rtt: Int64(100_000 + i * 1000)))
    }
    let result = analyzer.finish(inputs: [])
    #expect(result.services.first?.distribution.imbalanced == false)
    let skew = result.findings.first { $0.code == "long-lived-connections-skew" }
    #expect(skew != nil)
    #expect(skew?.evidence.contains { $0.contains("10.244.1.2:8080") && $0.contains("bytes") } == true)
    let first = result.services.first?.backends.first
    #expect(first?.httpRequests == 50 * 500)
    // Backend .2 has i = 0, 4, …, 196: RTTs 0.1 ms + i µs; nearest-rank p50 is the 25th of 50.
    #expect(first?.handshakeRTT?.p50 == 0.196)
    #expect(first?.handshakeRTT?.samples == 50)
  }

  @Test func evenWorkGivesNoSkewFinding() {
    var analyzer = ConnectionAnalyzer()
    for i in 0..<200 {
      analyzer.add(
        observation(
          backend: 2 + i % 4, client: UInt8(10 + i % 7), port: UInt16(40000 + i), bytes: 10_000, requests: 5,
          rtt: 100_000))
    }
    #expect(!analyzer.finish(inputs: []).findings.contains { $0.code == "long-lived-connections-skew" })
  }
}
