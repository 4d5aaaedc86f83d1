import LBCore

/// An IP address as two integers, IPv4 in the low 32 bits: what flow keys and decoded packets
/// hold, so that nothing on the hot path allocates. `IPAddress` is made only for reports.
public struct AddressBits: Hashable, Sendable {
  public var high: UInt64
  public var low: UInt64
  @inlinable public init(high: UInt64, low: UInt64) {
    self.high = high
    self.low = low
  }
  @inlinable public static var zero: AddressBits { AddressBits(high: 0, low: 0) }

  /// The address as lbscope's core type; `v6` says which family the bits are.
  public func address(v6: Bool) -> IPAddress {
    v6 ? .v6(IPv6Address(high: high, low: low)) : .v4(IPv4Address(UInt32(truncatingIfNeeded: low)))
  }

  /// Bits of a core address.
  public init(_ address: IPAddress) {
    switch address {
    case .v4(let a): self.init(high: 0, low: UInt64(a.value))
    case .v6(let a): self.init(high: a.high, low: a.low)
    }
  }
}

/// The header of an ICMP or ICMPv6 error quotes the packet that caused it: its 5-tuple, as
/// the sender of that packet wrote it.
public struct QuotedTuple: Sendable {
  public var v6 = false
  public var proto: UInt8 = 0
  public var source = AddressBits.zero
  public var destination = AddressBits.zero
  public var sourcePort: UInt16 = 0
  public var destinationPort: UInt16 = 0
}

/// TCP flag bits (RFC 9293 §3.1).
public enum TCPFlags {
  public static let fin: UInt8 = 0x01
  public static let syn: UInt8 = 0x02
  public static let rst: UInt8 = 0x04
  public static let psh: UInt8 = 0x08
  public static let ack: UInt8 = 0x10
}

/// One packet decoded down to its innermost IP packet and transport header, in place: a
/// decoder owns one of these and overwrites it for every packet, so decoding allocates nothing
/// (gopacket's `DecodingLayerParser` idea). Views in it are lent like the packet's bytes.
public struct DecodedPacket {
  // Link layer
  /// LINUX_SLL2 interface index, or -1.
  public var linkInterface: Int32 = -1
  /// LINUX_SLL/SLL2 packet type (0 to us, 1 broadcast, 2 multicast, 3 other host, 4 outgoing), or 0xFF.
  public var linkPacketType: UInt8 = 0xFF
  /// VLAN tags crossed and tunnels (VXLAN, Geneve, GRE, IP-in-IP) decapsulated.
  public var vlanTags = 0
  public var tunnels = 0

  // Network layer (innermost IP header)
  public var v6 = false
  public var source = AddressBits.zero
  public var destination = AddressBits.zero
  public var ttl: UInt8 = 0
  /// IPv4 identification, or the IPv6 fragment header's identification (0 without one).
  public var ipID: UInt32 = 0
  public var dontFragment = false
  /// The IP header checksum (IPv4), part of the duplicate signature.
  public var ipChecksum: UInt16 = 0
  /// Bytes of the IP packet as its header declares (what conntrack counts).
  public var ipLength = 0
  /// A fragment: `firstFragment` still has the transport header.
  public var fragment = false
  public var firstFragment = false
  public var proto: UInt8 = 0

  // Transport layer
  public var hasTransport = false
  public var sourcePort: UInt16 = 0
  public var destinationPort: UInt16 = 0
  public var l4Checksum: UInt16 = 0
  public var tcpFlags: UInt8 = 0
  public var seq: UInt32 = 0
  public var ack: UInt32 = 0
  public var window: UInt16 = 0
  /// TCP options (RFC 9293 MSS, RFC 7323 window scale and timestamps); 0 / 0xFF / nil when absent.
  public var mss: UInt16 = 0
  public var windowScale: UInt8 = 0xFF
  public var hasTimestamp = false
  public var tsValue: UInt32 = 0
  public var tsEcho: UInt32 = 0
  /// SACK permitted (kind 4, RFC 2018), seen in SYNs.
  public var sackPermitted = false
  /// The TCP option kinds in wire order, one byte each, first option in the low byte (at most
  /// 8; no-ops included, as stacks differ in how they pad): part of a SYN's stack fingerprint.
  public var tcpOptionKinds: UInt64 = 0
  /// Transport payload (captured part) and its length as the headers declare it.
  public var payload = ByteView(UnsafeRawBufferPointer(start: nil, count: 0))
  public var payloadLength = 0

  // ICMP / ICMPv6
  public var icmpType: UInt8 = 0
  public var icmpCode: UInt8 = 0
  /// The packet is an ICMP error and `quoted` names the flow it is about.
  public var icmpError = false
  /// Destination (or port) unreachable, for failure accounting.
  public var icmpUnreachable = false
  public var quoted = QuotedTuple()

  public init() {}

  /// Clears the fields a packet may not overwrite.
  @inlinable mutating func reset() {
    linkInterface = -1
    linkPacketType = 0xFF
    vlanTags = 0
    tunnels = 0
    resetNetwork()
  }

  @inlinable mutating func resetNetwork() {
    ipID = 0
    dontFragment = false
    ipChecksum = 0
    fragment = false
    firstFragment = false
    hasTransport = false
    sourcePort = 0
    destinationPort = 0
    l4Checksum = 0
    tcpFlags = 0
    seq = 0
    ack = 0
    window = 0
    mss = 0
    windowScale = 0xFF
    hasTimestamp = false
    tsValue = 0
    tsEcho = 0
    sackPermitted = false
    tcpOptionKinds = 0
    payloadLength = 0
    // A view from an earlier packet would point into a buffer that may since have moved.
    payload = ByteView(UnsafeRawBufferPointer(start: nil, count: 0))
    icmpType = 0
    icmpCode = 0
    icmpError = false
    icmpUnreachable = false
  }
}

/// What became of one packet.
public enum DecodeOutcome {
  /// An IP packet, decoded as far as its transport header.
  case ip
  /// A frame that carries no IP (ARP, LLDP, STP, …): not an issue, just not traffic we analyse.
  case notIP
  /// A non-first IP fragment: counted, not reassembled.
  case fragment
  /// A problem, counted in the input's summary.
  case issue(InputIssueKind, StaticString)
}
