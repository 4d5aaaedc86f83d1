import Foundation
import LBConntrack
import LBCore
import Testing

@Suite struct ConntrackReaderTests {
  @Test func readsEveryCorpusFileWithoutFailing() throws {
    let directory = corpusRoot.appendingPathComponent("conntrack")
    let all = files(in: directory)
    try #require(all.count >= 15, "the shared corpus must be beside the checkout (../shared/corpus)")
    for file in all {
      let (summary, observations) = try readFile(file.path)
      #expect(summary.records > 0, "\(file.lastPathComponent)")
      #expect(!observations.isEmpty, "\(file.lastPathComponent) yields connections")
      let name = file.lastPathComponent
      if name.contains("MANGLED") || name.contains("first-line-cut") {
        #expect(summary.truncated >= 1, "\(name): damage must be counted")
        #expect(summary.partial)
      }
    }
  }

  @Test func assemblesEventsIntoOneObservationPerConnection() throws {
    let file = corpusRoot.appendingPathComponent(
      "conntrack/felix-issue1490_conntrack-E_events_new-update_dns-and-tcp-dnat_PARTIAL.txt")
    let (summary, observations) = try readFile(file.path)
    #expect(summary.kind == .conntrackEvents)
    #expect(summary.records == 9)
    #expect(observations.count == 3)
    #expect(observations.allSatisfy { $0.replied == true && !$0.failed })
    let tcp = try #require(observations.first { $0.original.proto == .tcp })
    #expect(tcp.backend.description == "10.8.6.96:80")
    #expect(tcp.state == .established)
  }

  @Test func destroyEventsCarryCountersAndIPv6() throws {
    let file = corpusRoot.appendingPathComponent(
      "conntrack/netfilter-devel-ml_conntrack-E_ipv6-masquerade_mark_OFFLOAD_DESTROY-counters.txt")
    let (_, observations) = try readFile(file.path)
    #expect(observations.count == 1)
    let o = try #require(observations.first)
    #expect(o.originalCounters.packets == 15)
    #expect(o.replyCounters.bytes == 6905)
    #expect(o.isSourceTranslated)
    #expect(o.translated.source.address.description == "2003:a:c7f:e5e8:a3ae:63f7:7f92:e286")
  }

  @Test func aRefusedConnectionSeenOnlyInEventsIsAFailure() throws {
    let text = """
      [NEW] tcp      6 120 SYN_SENT src=192.168.50.11 dst=10.96.0.10 sport=40000 dport=80 [UNREPLIED] src=10.244.1.5 dst=192.168.50.11 sport=8080 dport=40000
      [DESTROY] tcp      6 CLOSE src=192.168.50.11 dst=10.96.0.10 sport=40000 dport=80 src=10.244.1.5 dst=192.168.50.11 sport=8080 dport=40000

      """
    let (summary, observations) = try readText(text)
    #expect(summary.kind == .conntrackEvents)
    #expect(observations.count == 1)
    #expect(observations.first?.failed == true)
  }

  @Test func readsTheXMLFormatAcrossLines() throws {
    let text = """
      <?xml version="1.0" encoding="utf-8"?>
      <conntrack>
      <flow><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.0.0.1</src><dst>10.96.0.10</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>40000</sport><dport>80</dport></layer4></meta>
      <meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>10.244.1.2</src><dst>10.0.0.1</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>8080</sport><dport>40000</dport></layer4></meta><meta direction="independent"><state>TIME_WAIT</state><timeout>110</timeout><mark>0</mark><use>1</use><id>12</id><assured/></meta></flow>
      </conntrack>

      """
    let (summary, observations) = try readText(text)
    #expect(summary.kind == .conntrack)
    #expect(summary.issueCount == 0)
    let o = try #require(observations.first)
    #expect(o.backend.description == "10.244.1.2:8080")
    #expect(o.state == .timeWait)
    #expect(o.assured)
  }

  @Test func countsAnXMLFlowCutAtTheEnd() throws {
    let text = "<conntrack>\n<flow><meta direction=\"original\"><layer3 protonum=\"2\"><src>10.0.0.1</src>\n"
    #expect(throws: ConntrackReaderError.self) { try readText(text) }
  }

  @Test func joinsAnEntrySplitBySummaryLine() throws {
    let text = """
      tcp      6 117 TIME_WAIT src=10.0.0.1 dst=10.96.0.10 spoconntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.
      rt=41001 dport=80 src=10.244.1.2 dst=10.0.0.1 sport=8080 dport=41001 [ASSURED] mark=0 use=1

      """
    let (summary, observations) = try readText(text)
    #expect(summary.issueCount == 0)
    #expect(observations.first?.original.source.port == 41001)
  }

  @Test func joinsAnEntrySplitBySummaryAfterItsTuples() throws {
    let text = """
      tcp      6 117 TIME_WAIT src=10.0.0.1 dst=10.96.0.10 sport=41001 dport=80 src=10.244.1.2 dst=10.0.0.1 sport=8080 dport=41001 [ASSURED] mconntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown.
      ark=0 use=1

      """
    let (summary, observations) = try readText(text)
    #expect(summary.issueCount == 0)
    #expect(observations.count == 1)
    #expect(summary.notes.contains("conntrack reported 1 flow entries"))
  }

  @Test func rejectsBinaryGarbageAsNotConntrack() throws {
    var bytes = [UInt8](repeating: 0, count: 4096)
    for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 2_654_435_761 >> 13) }
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "lbscope-garbage-\(UUID().uuidString)")
    try Data(bytes).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    let error = #expect(throws: ConntrackReaderError.self) { try readFile(url.path) }
    #expect(error?.code == .notConntrack)
  }

  @Test func rejectsAMissingFileWithItsPath() {
    let error = #expect(throws: ConntrackReaderError.self) { try readFile("/nonexistent/conntrack.txt") }
    #expect(error?.code == .cannotOpen)
    #expect(error?.description.hasPrefix("/nonexistent/conntrack.txt: cannot open") == true)
  }

  @Test func countsOverlongLinesAndKeepsGoing() throws {
    let long = String(repeating: "x", count: 100_000)
    let (summary, observations) = try readText(plainLine + "\n" + long + "\n" + plainLine + "\n")
    #expect(summary.malformed == 1)
    #expect(observations.count == 2)
  }

  /// Every prefix of a whole dump reads without a crash, and never yields more connections
  /// than the dump holds.
  @Test func dripFedDumpsNeverCrash() throws {
    let path = capturesRoot.appendingPathComponent("uniform/conntrack-L.txt").path
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let head = data.prefix(2000)
    for length in stride(from: 0, through: head.count, by: 7) {
      let text = String(decoding: head.prefix(length), as: UTF8.self)
      do {
        let (_, observations) = try readText(text)
        #expect(observations.count <= 20)
      } catch let error as ConntrackReaderError {
        #expect(error.code == .notConntrack)
      }
    }
  }
}
