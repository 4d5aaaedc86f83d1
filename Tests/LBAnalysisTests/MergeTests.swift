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
