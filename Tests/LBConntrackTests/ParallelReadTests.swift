import Foundation
import LBConntrack
import LBCore
import Testing

/// Collects observations in the order they were added; merging appends, so a parallel read
/// must reproduce the one-pass order exactly.
struct Collector: ObservationSink {
  var items: [ConnectionObservation] = []
  mutating func add(_ observation: ConnectionObservation) { items.append(observation) }
  mutating func merge(_ other: Collector, lineOffset: Int) {
    for var item in other.items {
      item.location.line += lineOffset
      items.append(item)
    }
  }
  func makeEmpty() -> Collector { Collector() }
}

@Suite struct ParallelReadTests {
  /// A dump with clean entries, damaged lines, an entry split by the summary line and blank
  /// lines, repeated so that every cut point lands somewhere different.
  func mixedDump() throws -> String {
    let lab = try String(
      contentsOf: capturesRoot.appendingPathComponent("affinity-nat/conntrack-L.txt"), encoding: .utf8)
    let damaged = """
      cp      6 117 TIME_WAIT src=10.0.0.9 dst=10.96.0.10 sport=41009 dport=80 src=10.244.1.2 dst=10.0.0.9 sport=8080 dport=41009 [ASSURED] mark=0 use=1
      tcp      6 117 TIME_WAIT src=10.0.0.1 dst=10.96.0.10 spoconntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.
      rt=41001 dport=80 src=10.244.1.2 dst=10.0.0.1 sport=8080 dport=41001 [ASSURED] mark=0 use=1
      this line is not conntrack

      """
    return String(repeating: lab + damaged, count: 7)
  }

  func read(_ path: String, parallelism: Int) throws -> (InputSummary, [ConnectionObservation]) {
    var limits = ConntrackReadLimits()
    limits.minimumPartBytes = 1
    var sink = Collector()
    let summary = try ConntrackReader(limits: limits).read(
      path: path, input: 3, into: &sink, parallelism: parallelism)
    return (summary, sink.items)
  }

  @Test(arguments: [2, 3, 4, 7])
  func aParallelReadEqualsTheOnePassRead(parallelism: Int) throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "lbscope-par-\(UUID().uuidString)")
    try Data(try mixedDump().utf8).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }

    let (one, oneItems) = try read(url.path, parallelism: 1)
    let (many, manyItems) = try read(url.path, parallelism: parallelism)
    #expect(one.records > 100 && one.issueCount == 14, "the fixture holds damage to count")
    #expect(manyItems.count == oneItems.count)
    let firstDifference = manyItems.indices.first { $0 < oneItems.count && manyItems[$0] != oneItems[$0] }
    #expect(firstDifference == nil, "same observations, same order, same lines")
    #expect(many.records == one.records)
    #expect(many.truncated == one.truncated)
    #expect(many.unsupported == one.unsupported)
    #expect(many.examples == one.examples, "line numbers are those of the whole file")
    #expect(many.notes == one.notes)
    #expect(many.partial == one.partial)
  }

  @Test func eventLogsAreReadInOnePass() throws {
    let path = capturesRoot.appendingPathComponent("affinity-nat/conntrack-E.txt").path
    let (one, oneItems) = try read(path, parallelism: 1)
    let (many, manyItems) = try read(path, parallelism: 4)
    #expect(many.kind == .conntrackEvents)
    #expect(manyItems.count == oneItems.count && many.records == one.records)
    #expect(zip(manyItems, oneItems).allSatisfy { $0 == $1 })
  }

  @Test func xmlIsReadInOnePass() throws {
    let path = capturesRoot.appendingPathComponent("affinity-nat/conntrack-L.xml").path
    let (_, oneItems) = try read(path, parallelism: 1)
    let (_, manyItems) = try read(path, parallelism: 4)
    #expect(!oneItems.isEmpty && manyItems.count == oneItems.count)
    #expect(zip(manyItems, oneItems).allSatisfy { $0 == $1 })
  }
}
