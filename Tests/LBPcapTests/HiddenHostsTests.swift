import Foundation
import LBAnalysis
import LBCore
import LBPcap
import Testing

/// Crafted packets fed through `FlowTable`: each hidden-host signal on its own, and cookies.
@Suite struct HiddenHostsTests {
  static let gateway = AddressBits(high: 0, low: 0xC0A8_3215)  // 192.168.50.21
  static let service = AddressBits(high: 0, low: 0x0A60_000A)  // 10.96.0.10

  /// A SYN from the gateway address; the fields a test varies are parameters.
  static func syn(
    port: UInt16, ttl: UInt8 = 63, ipID: UInt32 = 0, timestamps: Bool = true, mss: UInt16 = 1460,
    isn: UInt32 = 1000
  ) -> DecodedPacket {
    var p = DecodedPacket.tcpSegment(from: gateway, port, to: service, 80, seq: isn)
    p.ttl = ttl
    p.ipID = ipID
    p.dontFragment = true
    p.window = 64240
    p.mss = mss
    p.windowScale = 7
    p.sackPermitted = true
    p.hasTimestamp = timestamps
    p.tcpOptionKinds = timestamps ? 0x03_01_08_04_02 : 0x03_01_04_01_01_02
    return p
  }

  /// Runs packets through a flow table and returns the gateway's estimate.
  static func estimate(_ packets: [(DecodedPacket, Int64)]) -> HostEstimate? {
    let table = FlowTable()
    for (i, (p, t)) in packets.enumerated() { table.add(p, time: t, input: 0, number: i + 1) }
    table.finishAll { table.hosts.finished($0) }
    return table.hosts.estimates().first { $0.address == .v4(IPv4Address(0xC0A8_3215)) }
  }

  @Test func oneLinuxHostWithSequentialPortsIsOneHost() throws {
    let packets = (0..<10).map {
      (Self.syn(port: 40000 + UInt16($0) * 2, isn: UInt32($0)), Int64($0) * 1_000_000)
    }
    let e = try #require(Self.estimate(packets))
    #expect(e.estimatedHosts == 1)
    #expect(e.connections == 10)
  }

  @Test func interleavedPortRunsCountHosts() throws {
    // Three hosts, each with its own per-destination port offset, connecting in turn.
    var packets: [(DecodedPacket, Int64)] = []
    for round in 0..<5 {
      for (h, base) in [33000, 45000, 52000].enumerated() {
        let port = UInt16(base + round * 2)
        packets.append((Self.syn(port: port, isn: UInt32(round * 10 + h)), Int64(packets.count) * 1_000_000))
      }
    }
    let e = try #require(Self.estimate(packets))
    #expect(e.estimatedHosts == 3)
    #expect(e.evidence.contains { $0.hasPrefix("3 interleaved increasing ephemeral-port run") })
  }

  @Test func randomPortsGiveNoRuns() throws {
    let ports: [UInt16] = [40001, 51234, 33007, 60123, 47000, 35555, 58888, 42424]
    let packets = ports.enumerated().map { (Self.syn(port: $1, isn: UInt32($0)), Int64($0) * 1_000_000) }
    let e = try #require(Self.estimate(packets))
    #expect(e.estimatedHosts == 1)
  }

  @Test func distinctInitialTTLsCountHosts() throws {
    let ttls: [UInt8] = [63, 127, 254, 63, 127]
    let packets = ttls.enumerated().map {
      (Self.syn(port: UInt16(30000 + $0 * 5000), ttl: $1, isn: UInt32($0)), Int64($0) * 1_000_000)
    }
    let e = try #require(Self.estimate(packets))
    #expect(e.estimatedHosts == 3)
    #expect(e.evidence.contains { $0.hasPrefix("3 distinct TTL(s)") && $0.contains("initial 128") })
  }

  @Test func synFingerprintsSeparateStacks() throws {
    // Same TTL and ports spread out: only timestamps on/off and MSS differ.
    let packets: [(DecodedPacket, Int64)] = [
      (Self.syn(port: 30000, timestamps: true, isn: 1), 0),
      (Self.syn(port: 40000, timestamps: false, isn: 2), 1_000_000),
      (Self.syn(port: 50000, timestamps: false, mss: 1400, isn: 3), 2_000_000),
    ]
    let e = try #require(Self.estimate(packets))
    #expect(e.estimatedHosts == 3)
    #expect(e.evidence.contains { $0.contains("1 SYNs with TCP timestamps, 2 without") })
  }

  @Test func globalIPIDCountersInterleavedCountHosts() throws {
    // Two Windows-like hosts with host-wide IP ID counters, each making 6 connections of one
    // SYN and one data packet; their IDs interleave in two increasing sequences.
    var packets: [(DecodedPacket, Int64)] = []
    var ids: [UInt32] = [1000, 30000]
    for c in 0..<6 {
      for h in 0..<2 {
        let port = UInt16(20000 + h * 20000 + c * 977 % 3000)  // no port runs
        var s = Self.syn(port: port, ttl: 127, ipID: ids[h], isn: UInt32(c * 2 + h))
        s.dontFragment = false
        packets.append((s, Int64(packets.count) * 1_000_000))
        ids[h] += 1
        var d = s
        d.tcpFlags = TCPFlags.ack
        d.seq = s.seq &+ 1
        d.ipID = ids[h]
        packets.append((d, Int64(packets.count) * 1_000_000))
        ids[h] += 1
      }
    }
    let e = try #require(Self.estimate(packets))
    #expect(e.evidence.contains { $0.hasPrefix("2 interleaved IP ID counter sequence") })
    #expect(e.estimatedHosts == 2)
  }

  @Test func perConnectionIPIDsGiveNoEvidence() throws {
    // Linux ≥ 5.17: each connection starts its own counter at a random value.
    var packets: [(DecodedPacket, Int64)] = []
    var generator = SystemRandomNumberGenerator()
    for c in 0..<8 {
      let start = UInt32.random(in: 1...60000, using: &generator)
      for k in 0..<3 {
        var p = Self.syn(port: UInt16(20000 + c * 3001 % 20000), ipID: start + UInt32(k), isn: UInt32(c))
        if k > 0 {
          p.tcpFlags = TCPFlags.ack
          p.seq = UInt32(c) &+ UInt32(k)
        }
        packets.append((p, Int64(packets.count) * 1_000_000))
      }
    }
    let e = try #require(Self.estimate(packets))
    #expect(e.evidence.contains { $0.hasPrefix("IP IDs show no host-wide counter") })
    #expect(e.estimatedHosts == 1)
  }

  @Test func timestampClockRatesAreMeasuredPerConnection() throws {
    // Two long connections with random offsets: one at 1000 Hz, one at 100 Hz.
    var packets: [(DecodedPacket, Int64)] = []
    for (c, hz) in [(0, 1000.0), (1, 100.0)] {
      let offset: UInt32 = c == 0 ? 123_456_789 : 3_000_000_000
      for k in 0..<4 {
        var p = Self.syn(port: UInt16(30000 + c * 10000), isn: UInt32(c))
        if k > 0 {
          p.tcpFlags = TCPFlags.ack
          p.seq = UInt32(c) &+ 1
          p.payloadLength = 0
        }
        let seconds = Double(k) * 0.7
        p.tsValue = offset &+ UInt32(seconds * hz)
        packets.append((p, Int64(seconds * 1e9) + Int64(c)))
      }
    }
    let e = try #require(Self.estimate(packets))
    #expect(e.evidence.contains { $0 == "2 TCP timestamp clock rate(s): 100 Hz, 1000 Hz" })
    #expect(e.estimatedHosts == 2)
  }

  @Test func clockRatesSnapToKnownClocks() {
    #expect(HostEvidenceTable.clockRate(987) == 1000)
    #expect(HostEvidenceTable.clockRate(104) == 100)
    #expect(HostEvidenceTable.clockRate(1234) == 1200)
  }

  /// A data segment with `text` as payload (the text must outlive the call that uses it).
  static func withData(
    _ text: String, from: AddressBits, to: AddressBits, sport: UInt16, dport: UInt16, seq: UInt32,
    _ body: (DecodedPacket) -> Void
  ) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { raw in
      var p = DecodedPacket.tcpSegment(
        from: from, sport, to: to, dport, flags: TCPFlags.ack | TCPFlags.psh, seq: seq, ttl: 63,
        ipLength: 40 + raw.count)
      p.payload = ByteView(UnsafeRawBufferPointer(raw))
      p.payloadLength = raw.count
      body(p)
    }
  }

  @Test func forwardedHeadersAndUserAgentsCountClients() throws {
    let table = FlowTable()
    let requests = [
      "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 172.20.1.2, 10.0.0.1\r\nUser-Agent: a\r\n\r\n",
      "GET / HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 172.20.1.3\r\nuser-agent: b\r\n\r\n",
      "GET / HTTP/1.1\r\nForwarded: for=\"172.20.1.4\";proto=http\r\nUser-Agent: a\r\n\r\n",
      "GET / HTTP/1.1\r\nX-Real-IP: 172.20.1.2\r\nUser-Agent: a\r\n\r\n",
    ]
    for (i, text) in requests.enumerated() {
      let syn = Self.syn(port: UInt16(30000 + i * 7000), isn: UInt32(i * 100))
      table.add(syn, time: Int64(i) * 10, input: 0, number: i * 2 + 1)
      Self.withData(
        text, from: Self.gateway, to: Self.service, sport: syn.sourcePort, dport: 80, seq: syn.seq &+ 1
      ) {
        table.add($0, time: Int64(i) * 10 + 1, input: 0, number: i * 2 + 2)
      }
    }
    let e = try #require(table.hosts.estimates().first)
    #expect(e.evidence.contains { $0.hasPrefix("3 distinct client(s) in X-Forwarded-For") })
    #expect(e.evidence.contains { $0.hasPrefix("2 distinct User-Agent") })
    #expect(e.estimatedHosts == 3)
  }

  @Test func everyPrefixOfAnHTTPHeadIsReadSafely() {
    let head =
      "GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\nCookie: a=1; route=web-0\r\nUser-Agent: z\r\n\r\n"
    let bytes = Array(head.utf8)
    for n in 0...bytes.count {
      let table = FlowTable()
      let syn = Self.syn(port: 30000)
      table.add(syn, time: 0, input: 0, number: 1)
      Self.withData(
        String(decoding: bytes[0..<n], as: UTF8.self), from: Self.gateway, to: Self.service, sport: 30000,
        dport: 80,
        seq: syn.seq &+ 1
      ) { table.add($0, time: 1, input: 0, number: 2) }
      #expect(table.count == 1)
    }
  }
}
