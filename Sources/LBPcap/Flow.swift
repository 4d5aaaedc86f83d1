import LBCore

/// A flow's key, the same for both directions: the lower endpoint (address, then port) is `a`.
/// A trivial struct of integers, so hashing and comparing it allocate nothing.
public struct FlowKey: Hashable, Sendable {
  public var aHigh: UInt64
  public var aLow: UInt64
  public var bHigh: UInt64
  public var bLow: UInt64
  public var aPort: UInt16
  public var bPort: UInt16
  public var proto: UInt8
  public var v6: Bool

  /// The key of a packet from `source:sp` to `destination:dp`, and whether the source is `a`.
  @inline(__always)
  public static func make(
    v6: Bool, proto: UInt8, source: AddressBits, sourcePort: UInt16, destination: AddressBits,
    destinationPort: UInt16
  ) -> (FlowKey, sourceIsA: Bool) {
    let sourceFirst =
      (source.high, source.low, sourcePort) <= (destination.high, destination.low, destinationPort)
    if sourceFirst {
      return (
        FlowKey(
          aHigh: source.high, aLow: source.low, bHigh: destination.high, bLow: destination.low,
          aPort: sourcePort, bPort: destinationPort, proto: proto, v6: v6), true
      )
    }
    return (
      FlowKey(
        aHigh: destination.high, aLow: destination.low, bHigh: source.high, bLow: source.low,
        aPort: destinationPort, bPort: sourcePort, proto: proto, v6: v6), false
    )
  }

  /// A cheap, well-mixed hash for the flow table (not for hostile collision resistance: the
  /// table's probe sequences are bounded by its load factor, and the number of flows by its cap).
  @inline(__always) var tableHash: UInt64 {
    var h = aLow &* 0x9E37_79B9_7F4A_7C15
    h ^= bLow &+ (UInt64(aPort) << 48 | UInt64(bPort) << 32 | UInt64(proto) << 8)
    h = (h ^ (h >> 29)) &* 0xBF58_476D_1CE4_E5B9
    h ^= aHigh &* 0x94D0_49BB_1331_11EB ^ bHigh
    h = (h ^ (h >> 32)) &* 0xD6E8_FEB8_6659_FD93
    return h ^ (h >> 32)
  }

  var aEndpoint: Endpoint {
    Endpoint(AddressBits(high: aHigh, low: aLow).address(v6: v6), aPort)
  }
  var bEndpoint: Endpoint {
    Endpoint(AddressBits(high: bHigh, low: bLow).address(v6: v6), bPort)
  }
}

/// Everything lbscope keeps about one bidirectional flow: Zeek `conn.log`'s record, plus what
/// the NAT-leg join and the per-backend measures need. Direction 0 is the originator.
public struct FlowRecord: Sendable {
  public var key: FlowKey
  /// Whether the originator is the key's `a` endpoint.
  public var originatorIsA: Bool
  public var input: Int32
  /// Packet number (in its file) of the flow's first packet.
  public var firstPacket: Int
  public var firstSeen: Int64
  public var lastSeen: Int64
  public var packets: (UInt64, UInt64) = (0, 0)
  /// IP bytes (as the IP headers declare them) each way.
  public var bytes: (UInt64, UInt64) = (0, 0)
  /// Copies of packets already counted (the same packet seen on several interfaces).
  public var copies: UInt64 = 0
  public var retransmissions: UInt32 = 0
  /// TCP: the originator's initial sequence number when its SYN was seen.
  public var isn: UInt32 = 0
  public var sawSYN = false
  public var sawSYNACK = false
  public var handshakeDone = false
  public var synTime: Int64 = 0
  public var synAckTime: Int64 = 0
  public var finOriginator = false
  public var finResponder = false
  public var rstOriginator = false
  public var rstResponder = false
  /// An ICMP/ICMPv6 destination-unreachable error quoted this flow.
  public var icmpUnreachable = false
  /// Plaintext HTTP/1.x requests from the originator.
  public var httpRequests: UInt32 = 0
  /// Key that finds this flow's other NAT leg (TCP: the ISN; others: the first packet), 0 if none.
  public var joinKey: UInt64 = 0
  /// Zeek-style history: up to 8 letters, one byte each, in the order first seen.
  public var history: UInt64 = 0
  public var historySet: UInt16 = 0
  /// Highest sequence end seen each way (TCP), for retransmissions.
  var seqEnd: (UInt32, UInt32) = (0, 0)
  var seqKnown: (Bool, Bool) = (false, false)
  /// Signatures of each direction's last two packets, to recognise copies.
  var recent: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
  var recentTime: (Int64, Int64, Int64, Int64) = (0, 0, 0, 0)
  /// Originator's first packet: TTL, IP ID, TCP timestamp, window, MSS, window scale.
  public var firstTTL: UInt8 = 0
  public var firstIPID: UInt32 = 0
  public var firstTSValue: UInt32 = 0
  public var hasTimestamps = false
  public var synWindow: UInt16 = 0
  public var synMSS: UInt16 = 0
  public var synWindowScale: UInt8 = 0xFF
  /// The originator's slot in the trace's `HostEvidenceTable` (-1: not tracked).
  public var hostSlot: Int32 = -1
  /// Capture time of `firstTSValue`, and the originator's latest TCP timestamp and its time:
  /// the connection's timestamp clock rate.
  public var tsFirstTime: Int64 = 0
  public var tsLastValue: UInt32 = 0
  public var tsLastTime: Int64 = 0
  /// The first data segment each way was examined for an HTTP head.
  var sawRequestHead = false
  var sawResponseHead = false
  /// Up to three cookies (name hash, value hash) from the request's `Cookie` or the response's
  /// `Set-Cookie`; names and values are in the trace's `HTTPStrings`.
  public var cookies: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)

  /// The cookies as (name, value) hash pairs.
  public var cookiePairs: [(name: UInt64, value: UInt64)] {
    [(cookies.0, cookies.1), (cookies.2, cookies.3), (cookies.4, cookies.5)].filter { $0.0 != 0 }
  }

  mutating func addCookie(name: UInt64, value: UInt64) {
    if cookies.0 == name || cookies.2 == name || cookies.4 == name { return }
    if cookies.0 == 0 {
      cookies.0 = name
      cookies.1 = value
    } else if cookies.2 == 0 {
      cookies.2 = name
      cookies.3 = value
    } else if cookies.4 == 0 {
      cookies.4 = name
      cookies.5 = value
    }
  }

  public var originator: Endpoint { originatorIsA ? key.aEndpoint : key.bEndpoint }
  public var responder: Endpoint { originatorIsA ? key.bEndpoint : key.aEndpoint }
  public var proto: TransportProtocol { TransportProtocol(rawValue: key.proto) }

  /// The originator → responder tuple.
  public var tuple: FiveTuple {
    FiveTuple(proto: proto, source: originator, destination: responder)
  }

  /// Whether the responder sent anything.
  public var replied: Bool { packets.1 > 0 }

  /// Closed by FIN both ways or a reset: a later SYN on the same ports is a new connection.
  public var closed: Bool { (finOriginator && finResponder) || rstOriginator || rstResponder }

  /// SYN → SYN-ACK time at the capture point, when both were seen.
  public var handshakeRTT: Int64? {
    sawSYN && sawSYNACK && synAckTime >= synTime ? synAckTime - synTime : nil
  }

  /// The history as text (`ShADadFf`): upper case for the originator, lower for the responder.
  public var historyText: String {
    var text = ""
    var h = history
    while h != 0 {
      text.append(Character(Unicode.Scalar(UInt8(truncatingIfNeeded: h))))
      h >>= 8
    }
    return text
  }

  /// The connection state conntrack would name, as far as packets show it.
  public var state: ConnectionState? {
    guard key.proto == 6 else { return nil }
    if rstOriginator || rstResponder { return .close }
    if finOriginator && finResponder { return .timeWait }
    if finOriginator { return .finWait }
    if finResponder { return .closeWait }
    if sawSYN && !sawSYNACK && packets.1 == 0 { return .synSent }
    if sawSYNACK && !handshakeDone && packets.0 <= 1 { return .synReceived }
    return .established
  }

  /// Settled: the handshake completed, or (for flows seen mid-stream and other protocols)
  /// traffic went both ways.
  public var assured: Bool {
    if key.proto == 6 && (sawSYN || sawSYNACK) { return handshakeDone }
    return packets.0 > 0 && packets.1 > 0
  }

  mutating func addHistory(_ letter: UInt8) {
    let bit: UInt16
    switch letter {
    case UInt8(ascii: "S"): bit = 1 << 0
    case UInt8(ascii: "H"): bit = 1 << 1
    case UInt8(ascii: "A"): bit = 1 << 2
    case UInt8(ascii: "D"): bit = 1 << 3
    case UInt8(ascii: "F"): bit = 1 << 4
    case UInt8(ascii: "R"): bit = 1 << 5
    case UInt8(ascii: "T"): bit = 1 << 6
    case UInt8(ascii: "s"): bit = 1 << 7
    case UInt8(ascii: "h"): bit = 1 << 8
    case UInt8(ascii: "a"): bit = 1 << 9
    case UInt8(ascii: "d"): bit = 1 << 10
    case UInt8(ascii: "f"): bit = 1 << 11
    case UInt8(ascii: "r"): bit = 1 << 12
    case UInt8(ascii: "t"): bit = 1 << 13
    default: bit = 1 << 15
    }
    guard historySet & bit == 0 else { return }
    historySet |= bit
    var shift: UInt64 = 0
    while shift < 64 && (history >> shift) & 0xFF != 0 { shift += 8 }
    if shift < 64 { history |= UInt64(letter) << shift }
  }
}
