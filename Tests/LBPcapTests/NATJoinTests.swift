import LBCore
import LBPcap
import Testing

/// `NATJoiner` on flows that `FlowTable` made from crafted SYNs, handed over in an order of the
/// test's choosing.
@Suite struct NATJoinTests {
  static let service = AddressBits(high: 0, low: 0x0A60_000A)  // 10.96.0.10
  static let node = AddressBits(high: 0, low: 0x0A00_0005)  // 10.0.0.5

  /// A SYN; the legs of one connection share its initial sequence number, which NAT keeps.
  static func syn(
    from source: AddressBits, _ sourcePort: UInt16, to destination: AddressBits, _ destinationPort: UInt16,
    isn: UInt32
  ) -> DecodedPacket {
    DecodedPacket.tcpSegment(from: source, sourcePort, to: destination, destinationPort, seq: isn)
  }

  static func pod(_ i: Int) -> AddressBits { AddressBits(high: 0, low: 0x0AF4_0102 + UInt64(i % 8)) }
  static func client(_ i: Int) -> AddressBits { AddressBits(high: 0, low: 0xC0A8_0001 + UInt64(i / 1000)) }

  /// Runs `packets` (with their times) through a flow table and returns its flows, oldest first.
  static func flows(_ packets: [(DecodedPacket, Int64)]) -> [FlowRecord] {
    let table = FlowTable()
    for (i, (p, t)) in packets.enumerated() { table.add(p, time: t, input: 0, number: i + 1) }
    var flows: [FlowRecord] = []
    table.finishAll { flows.append($0) }
    return flows
  }

  /// A new connection on a finished one's ports finishes the old flow inside `add`; a caller
  /// that only calls `finishAll` still gets both, the old one first.
  @Test func flowsFinishedByAddAreNotLost() {
    let first = Self.syn(from: Self.client(0), 40000, to: Self.service, 80, isn: 1)
    let second = Self.syn(from: Self.client(0), 40000, to: Self.service, 80, isn: 99)
    let flows = Self.flows([(first, 0), (second, 2_000_000_000)])
    #expect(flows.map(\.isn) == [1, 99])
  }

  /// 5,000 connections seen before DNAT (to the Service) and after it (to a Pod), all waiting at
  /// once: 10,000 legs fill more than two of the join's 4,096-record blocks. Handed over newest
  /// first, so each pair arrives in the opposite order of its start.
  @Test func joinsEveryPairWhenWaitingLegsFillSeveralBlocks() {
    var packets: [(DecodedPacket, Int64)] = []
    for i in 0..<5000 {
      let port = UInt16(20000 + i)
      let isn = UInt32(i) &* 2_654_435_761
      let t = Int64(i) * 10_000
      packets.append((Self.syn(from: Self.client(i), port, to: Self.service, 80, isn: isn), t))
      packets.append((Self.syn(from: Self.client(i), port, to: Self.pod(i), 8080, isn: isn), t + 1000))
    }
    var joiner = NATJoiner()
    var observations: [ConnectionObservation] = []
    for flow in Self.flows(packets).reversed() { joiner.add(flow) { observations.append($0) } }
    joiner.flush(now: nil) { observations.append($0) }

    #expect(observations.count == 5000)
    #expect(joiner.joinedConnections == 5000)
    #expect(joiner.oneLegConnections == 0)
    var wrong = 0
    for (i, o) in observations.enumerated() {
      let port = UInt16(20000 + i)
      let client = Endpoint(Self.client(i).address(v6: false), port)
      if o.original
        != FiveTuple(
          proto: .tcp, source: client, destination: Endpoint(Self.service.address(v6: false), 80))
        || o.translated
          != FiveTuple(
            proto: .tcp, source: client, destination: Endpoint(Self.pod(i).address(v6: false), 8080))
        || o.location.line != 2 * i + 1
      {
        wrong += 1
      }
    }
    #expect(wrong == 0, "observations not in start order or not joined with their own Pod")
  }

  /// With masquerade a node sees three legs: client → Service, client → Pod (after DNAT) and
  /// node → Pod (after SNAT). Handed over newest first, they are ordered by start again: the
  /// first is the original, the last with another tuple the translated.
  @Test func ordersThreeLegsByStart() throws {
    let isn: UInt32 = 77_777
    let client = Self.client(0)
    let packets = [
      (Self.syn(from: client, 40000, to: Self.service, 80, isn: isn), Int64(1_000)),
      (Self.syn(from: client, 40000, to: Self.pod(3), 8080, isn: isn), Int64(2_000)),
      (Self.syn(from: Self.node, 61000, to: Self.pod(3), 8080, isn: isn), Int64(3_000)),
    ]
    var joiner = NATJoiner()
    var observations: [ConnectionObservation] = []
    for flow in Self.flows(packets).reversed() { joiner.add(flow) { observations.append($0) } }
    joiner.flush(now: nil) { observations.append($0) }

    let o = try #require(observations.first)
    #expect(observations.count == 1)
    #expect(o.original.source == Endpoint(client.address(v6: false), 40000))
    #expect(o.original.destination == Endpoint(Self.service.address(v6: false), 80))
    #expect(o.translated.source == Endpoint(Self.node.address(v6: false), 61000))
    #expect(o.translated.destination == Endpoint(Self.pod(3).address(v6: false), 8080))
    #expect(o.location.line == 1)
  }
}
