import Foundation
import LBCore
import Testing

@testable import LBConntrack

/// The fast path (`CommonLineParser`) must decode every line it accepts to the observation the
/// general parser makes of it, and must accept the lines real tables are made of.
@Suite struct CommonLineParserTests {
  /// Every line of every conntrack text in captures/ and ../shared/corpus.
  func realLines() throws -> [(file: String, line: String)] {
    var urls = files(in: corpusRoot.appendingPathComponent("conntrack"))
    for scenario in files(in: capturesRoot) {
      urls += files(in: scenario).filter {
        $0.lastPathComponent.hasPrefix("conntrack-") && $0.pathExtension == "txt"
          || $0.lastPathComponent == "nf_conntrack.txt"
      }
    }
    var lines: [(String, String)] = []
    for url in urls {
      let text = try String(contentsOf: url, encoding: .isoLatin1)
      for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        lines.append((url.lastPathComponent, String(line)))
      }
    }
    return lines
  }

  func fast(_ text: String) -> IPv4Observation? {
    var text = text
    return text.withUTF8 { CommonLineParser.parse(UnsafeRawBufferPointer($0), number: 7) }
  }

  func general(_ text: String) -> ConntrackLine { parseLine(text, number: 7) }

  /// Whenever the fast path accepts, the general parser gives a clean entry with the same
  /// observation.
  func expectAgreement(_ text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
    guard let quick = fast(text) else { return }
    guard case .entry(let slow) = general(text) else {
      Issue.record("fast path accepted a line the general parser does not take as clean: \(text)")
      return
    }
    #expect(
      quick.observation(input: 3) == slow.observation(input: 3), "\(text)", sourceLocation: sourceLocation)
  }

  @Test func agreesOnEveryRealLine() throws {
    let lines = try realLines()
    #expect(lines.count > 1000)
    var accepted = 0
    for (_, line) in lines {
      expectAgreement(line)
      if fast(line) != nil { accepted += 1 }
    }
    // Events, XML and the corpus's odd shapes go to the general parser; the table dumps'
    // lines (over 2,000 of them) must have been compared here.
    #expect(accepted > 2000, "fast path took \(accepted) of \(lines.count) lines")
  }

  /// Every table dump the lab made (`conntrack -L`, `-o extended`, /proc) is in the fast path's
  /// shape, line for line.
  @Test func takesTheLabDumpsShapes() throws {
    let names = ["conntrack-L.txt", "conntrack-L-extended.txt", "nf_conntrack.txt"]
    let urls = files(in: capturesRoot).flatMap { scenario in
      names.map { scenario.appendingPathComponent($0) }
    }.filter { FileManager.default.fileExists(atPath: $0.path) }
    #expect(urls.count >= 20)
    var checked = 0
    for url in urls {
      let name = url.path
      let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
      // A scenario whose traffic is dropped before conntrack keeps it has an empty table; other
      // protocols than TCP and UDP (the kernel's own IGMP, `unknown 2`) take the general parser.
      let entries = lines.filter { line in
        let words = line.split(separator: " ")
        let proto = words.first == "ipv4" ? words.dropFirst(2).first : words.first
        return proto == "tcp" || proto == "udp"
      }
      checked += entries.count
      #expect(entries.allSatisfy { fast($0) != nil }, "\(name): a clean line left the fast path")
    }
    #expect(checked > 1000)
  }

  /// Every prefix and every one-byte change of real lines: the fast path either gives up or
  /// agrees with the general parser.
  @Test func agreesOnDamagedLines() throws {
    let samples = try realLines().map(\.line).filter { fast($0) != nil }
    #expect(!samples.isEmpty)
    let replacements: [UInt8] = [0x20, 0x09, 0x3D, 0x5B, 0x30, 0x39, 0x2E, 0x3A, 0x41, 0x00, 0x0D]
    for line in samples.prefix(40) {
      let bytes = Array(line.utf8)
      for end in 0...bytes.count {
        expectAgreement(String(decoding: bytes[..<end], as: UTF8.self))
      }
      for i in bytes.indices {
        for replacement in replacements where replacement != bytes[i] {
          var changed = bytes
          changed[i] = replacement
          expectAgreement(String(decoding: changed, as: UTF8.self))
        }
      }
    }
  }

  /// The reply's destination, compared with the original source's text instead of parsed
  /// again: for every address length, the same text, text that differs in its first or last
  /// byte, an address that extends the original one, and a tab after it.
  @Test func repeatedSourcesAreReadAsTheirText() {
    let addresses = [
      "1.2.3.4", "10.2.3.4", "10.24.3.4", "10.244.3.4", "10.244.30.4", "10.244.30.41",
      "10.244.130.41", "100.244.130.41", "255.255.255.255",
    ]
    for source in addresses {
      let bytes = Array(source.utf8)
      var others = [source, "9" + source.dropFirst(), source.dropLast() + "0", source + "1"]
      others.append(String(decoding: bytes.dropLast() + [bytes.last == 0x39 ? 0x38 : 0x39], as: UTF8.self))
      for reply in others {
        for gap in [" ", "\t"] {
          let line =
            "tcp      6 86024 ESTABLISHED src=\(source) dst=10.96.0.1 sport=40000 dport=443 src=10.244.1.7 dst=\(reply)\(gap)sport=8443 dport=40000 [ASSURED] mark=0 use=1"
          expectAgreement(line)
          if let parsed = fast(line), let expected = IPAddress("\(reply)"), case .v4(let v4) = expected {
            #expect(parsed.translatedSource == v4.value, "\(line)")
          }
        }
      }
    }
  }

  /// Through an `AddressMemo` (frontends and backends looked up by their text), lines decode
  /// exactly as without one: with more addresses than the memo has slots, addresses that are
  /// prefixes of others, tabs after them, and invalid addresses that must never be remembered.
  @Test func theAddressMemoChangesNothing() {
    // A fixed linear congruential sequence: a failure reproduces.
    var state: UInt64 = 20_261_123
    func draw(_ range: ClosedRange<Int>) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return range.lowerBound + Int(state >> 33) % (range.count)
    }
    let memo = AddressMemo()
    var hits = 0
    for n in 0..<20_000 {
      let frontend = "10.96.\(draw(0...3)).\(draw(1...260))"
      let backend = "10.244.\(draw(0...9)).\(draw(0...30))"
      let gap = draw(0...1) == 0 ? " " : "\t"
      let line =
        "tcp      6 86024 ESTABLISHED src=10.0.\(n % 250).\(n % 7) dst=\(frontend)\(gap)sport=40000 dport=443 src=\(backend)\(gap)dst=10.0.\(n % 250).\(n % 7) sport=8443 dport=40000 [ASSURED] mark=0 use=1"
      var text = line
      let remembered = text.withUTF8 {
        CommonLineParser.parse(UnsafeRawBufferPointer($0), number: 7, memo: memo)
      }
      #expect(remembered == fast(line), "\(line)")
      expectAgreement(line)
      if remembered != nil && fast(line) != nil { hits += 1 }
    }
    // Octets above 255 are rejected both ways, so most lines (not all) decode.
    #expect(hits > 10_000)
  }

  @Test func givesUpOnShapesItDoesNotKnow() {
    let lines = [
      "[NEW] tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.96.0.1 sport=1 dport=443 [UNREPLIED] src=10.244.1.2 dst=10.0.0.1 sport=6443 dport=1",
      "tcp      6 431999 ESTABLISHED src=fd00::1 dst=fd00::2 sport=1 dport=2 src=fd00::2 dst=fd00::1 sport=2 dport=1 [ASSURED] mark=0 use=1",
      "icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1 mark=0 use=1",
      "tcp      6 10 CLOSE src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 [OFFLOAD] mark=0 use=1",
      "tcp      6 10 CLOSE src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 mark=0 use=1 vendorword",
      "cp      6 10 CLOSE src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 mark=0 use=1",
    ]
    for line in lines {
      #expect(fast(line) == nil, "\(line)")
      expectAgreement(line)
    }
    let clean =
      "udp      17 29 src=10.0.0.1 dst=10.96.0.10 sport=5353 dport=53 packets=1 bytes=60 [UNREPLIED] src=10.244.0.5 dst=10.0.0.1 sport=53 dport=5353 packets=0 bytes=0 mark=0 zone=3 use=1 id=99"
    let observation = fast(clean)?.observation(input: 0)
    #expect(observation?.replied == false && observation?.zone == 3 && observation?.mark == 0)
    #expect(observation?.originalCounters == Counters(packets: 1, bytes: 60))
    #expect(observation?.replyCounters == Counters(packets: 0, bytes: 0))
    #expect(observation?.translated.source == Endpoint(.v4(IPv4Address(10, 0, 0, 1)), 5353))
    #expect(observation?.translated.destination == Endpoint(.v4(IPv4Address(10, 244, 0, 5)), 53))
    expectAgreement(clean)
  }
}
