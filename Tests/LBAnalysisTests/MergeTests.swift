import Foundation
import LBAnalysis
import LBConntrack
import LBCore
import Testing

/// A text form of everything an analysis decided, for comparing two analyses whole.
func digest(_ result: AnalysisResult) -> [String] {
  var lines = ["connections \(result.connections) withoutDNAT \(result.connectionsWithoutDNAT)"]
  for s in result.services {
    lines.append(
      "service \(s.proto) \(s.frontends) \(s.connections) failed \(s.failedConnections) \(s.clientTotals)")
    for b in s.backends {
      lines.append(
        "  backend \(b.address) \(b.connections) failed \(String(describing: b.failedConnections)) \(String(describing: b.packets))"
      )
    }
    for c in s.clients {
      lines.append(
        "  client \(c.address) \(c.connections) \(c.backends.map { "\($0.backend)×\($0.connections)" }) \(String(describing: c.sticky))"
      )
    }
    lines.append("  \(s.distribution.verdict)")
  }
  for t in result.translatedSources {
    lines.append("translated \(t.address) \(t.originalSourceCount) \(t.connections) \(t.exampleSources)")
  }
  lines += result.findings.map { "finding \($0.code) \($0.summary)" }
  return lines
}

@Suite struct AnalyzerMergeTests {
  @Test func mergingPartsGivesTheSameAnalysisAsOnePass() throws {
    var observations: [ConnectionObservation] = []
    let paths =
      [
        "affinity-nat/conntrack-L.txt", "uniform/conntrack-L.txt",
        "affinity-nat/gateways/gw-1-conntrack-L.txt",
      ]
      .map { labRoot.appendingPathComponent($0).path }
    for (i, path) in paths.enumerated() {
      _ = try ConntrackReader().read(path: path, input: i) { observations.append($0) }
    }
    try #require(observations.count > 300)

    var whole = ConnectionAnalyzer()
    for o in observations { whole.add(o) }

    // Interleaved parts, so that the same clients and pairs appear in several of them.
    for partCount in [2, 3, 5] {
      var parts = [ConnectionAnalyzer](repeating: ConnectionAnalyzer(), count: partCount)
      for (i, o) in observations.enumerated() { parts[i % partCount].add(o) }
      var merged = ConnectionAnalyzer()
      // Merge a merged analyzer too: its merged pairs must carry over.
      var tail = parts[partCount - 1]
      if partCount > 2 { tail.merge(parts[partCount - 2]) }
      for part in parts.prefix(partCount > 2 ? partCount - 2 : partCount - 1) { merged.merge(part) }
      merged.merge(tail)
      #expect(digest(merged.finish(inputs: [])) == digest(whole.finish(inputs: [])))
    }
  }
}

@Suite struct AnalyzerBatchTests {
  /// Batches (with their lookups started ahead) give the same analysis as one connection at a
  /// time, whatever the batch size, including batches that meet new services and clients.
  @Test func batchesGiveTheSameAnalysisAsSingleAdds() throws {
    var observations: [ConnectionObservation] = []
    for (i, name) in [
      "affinity-nat/conntrack-L.txt", "uniform/conntrack-L.txt", "stale-failing/conntrack-E.txt",
    ]
    .enumerated() {
      _ = try ConntrackReader().read(path: labRoot.appendingPathComponent(name).path, input: i) {
        observations.append($0)
      }
    }
    try #require(observations.count > 300)
    var single = ConnectionAnalyzer()
    for o in observations { single.add(o) }
    let expected = digest(single.finish(inputs: []))
    for size in [1, 2, 7, 64, 1000] {
      var batched = ConnectionAnalyzer()
      var start = 0
      while start < observations.count {
        let end = min(start + size, observations.count)
        batched.add(contentsOf: Array(observations[start..<end]))
        start = end
      }
      #expect(digest(batched.finish(inputs: [])) == expected, "batch size \(size)")
    }
  }
}

@Suite struct IPv4LaneTests {
  /// The lines of real table dumps that the readers' fast path takes.
  func fastLines() throws -> [IPv4Observation] {
    var lines: [IPv4Observation] = []
    for name in ["affinity-nat/conntrack-L.txt", "uniform/conntrack-L.txt", "affinity-nat/nf_conntrack.txt"] {
      let text = try String(contentsOf: labRoot.appendingPathComponent(name), encoding: .utf8)
      for (n, line) in text.split(separator: "\n").enumerated() {
        var line = String(line)
        if let parsed = line.withUTF8({ CommonLineParser.parse(UnsafeRawBufferPointer($0), number: n + 1) }) {
          lines.append(parsed)
        }
      }
    }
    return lines
  }

  /// `add(contentsOf:input:)` of IPv4 connections counts exactly what adding their observations
  /// one by one counts, whatever the batch size.
  @Test func ipv4BatchesGiveTheSameAnalysisAsObservations() throws {
    let lines = try fastLines()
    try #require(lines.count > 300)
    var single = ConnectionAnalyzer()
    for line in lines { single.add(line.observation(input: 0)) }
    let expected = digest(single.finish(inputs: []))
    for size in [1, 3, 64, 500] {
      var batched = ConnectionAnalyzer()
      var start = 0
      while start < lines.count {
        let end = min(start + size, lines.count)
        lines[start..<end].withUnsafeBufferPointer { batched.add(contentsOf: $0, input: 0) }
        start = end
      }
      #expect(digest(batched.finish(inputs: [])) == expected, "batch size \(size)")
    }
  }

  /// A whole file read into an analyzer (fast path, split over threads, merged) is the analysis
  /// of its observations one by one.
  @Test func readerIntoAnalyzerMatchesObservations() throws {
    let path = labRoot.appendingPathComponent("affinity-nat/conntrack-L.txt").path
    var observations: [ConnectionObservation] = []
    _ = try ConntrackReader().read(path: path, input: 0) { observations.append($0) }
    var single = ConnectionAnalyzer()
    for o in observations { single.add(o) }
    var limits = ConntrackReadLimits()
    limits.minimumPartBytes = 1
    for parallelism in [1, 2, 5] {
      var analyzer = ConnectionAnalyzer()
      _ = try ConntrackReader(limits: limits).read(
        path: path, input: 0, into: &analyzer, parallelism: parallelism)
      #expect(
        digest(analyzer.finish(inputs: [])) == digest(single.finish(inputs: [])), "\(parallelism) parts")
    }
  }

  /// At the per-service client cap, merged parts keep at most the cap, and every connection is
  /// either a kept client's or counted as dropped.
  @Test func mergedPartsRespectTheClientCap() throws {
    var options = AnalysisOptions()
    options.maxClientsPerService = 5
    options.clientsKept = 0
    func connection(client: UInt32, backend: UInt32) -> ConnectionObservation {
      ConnectionObservation(
        original: FiveTuple(
          proto: .tcp, source: Endpoint(.v4(IPv4Address(0x0A00_0000 | client)), 40000),
          destination: Endpoint(.v4(IPv4Address(10, 96, 0, 1)), 80)),
        translated: FiveTuple(
          proto: .tcp, source: Endpoint(.v4(IPv4Address(0x0A00_0000 | client)), 40000),
          destination: Endpoint(.v4(IPv4Address(0x0AF4_0000 | backend)), 8080)),
        state: .established, replied: true, assured: true)
    }
    var first = ConnectionAnalyzer(options: options)
    var second = ConnectionAnalyzer(options: options)
    // Clients 1-4 in the first part, 3-9 in the second: 9 addresses, a cap of 5.
    for c in UInt32(1)...4 { first.add(connection(client: c, backend: c % 3)) }
    for c in UInt32(3)...9 {
      second.add(connection(client: c, backend: c % 3))
      second.add(connection(client: c, backend: (c + 1) % 3))
    }
    first.merge(second)
    let service = try #require(first.finish(inputs: []).services.first)
    #expect(service.connections == 4 + 14)
    #expect(service.clients.count == 5)
    #expect(service.clientTotals.clients == 5)
    #expect(service.clientTotals.connections + service.droppedClientConnections == service.connections)
    // The first part's clients are all kept, with what the second part adds to them.
    let three = try #require(service.clients.first { $0.address == .v4(IPv4Address(10, 0, 0, 3)) })
    #expect(three.connections == 3)
  }
}
