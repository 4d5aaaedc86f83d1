extension PacketDecoder {
  /// IPv4 (RFC 791):
  ///
  ///     0 version/IHL  1 DSCP/ECN  2 total length   4 identification  6 flags/fragment offset
  ///     8 TTL          9 protocol  10 checksum      12 source         16 destination
  ///     20 options (IHL × 4 − 20 bytes)
  ///
  /// The view is clipped to the total length, so link-layer padding and FCS never count as
  /// payload. A total length of 0 is what segmentation offload leaves in captures: the captured
  /// length stands in for it.
  mutating func ipv4(_ bytes: ByteView) -> DecodeOutcome {
    guard let first = bytes.u8(0), let declared = bytes.u16(2), let id = bytes.u16(4),
      let fragmentField = bytes.u16(6), let ttl = bytes.u8(8), let proto = bytes.u8(9),
      let checksum = bytes.u16(10), let source = bytes.u32(12), let destination = bytes.u32(16)
    else { return .issue(.truncated, "IPv4 header cut short") }
    guard first >> 4 == 4 else { return .issue(.malformed, "IPv4 header with another version") }
    let headerLength = Int(first & 0x0F) * 4
    guard headerLength >= 20 else { return .issue(.malformed, "IPv4 header length below 20 bytes") }
    var total = Int(declared)
    if total == 0 { total = bytes.count }
    guard total >= headerLength else {
      return .issue(.malformed, "IPv4 total length shorter than its header")
    }
    guard total <= bytes.count + snapMissing else {
      return .issue(.malformed, "IPv4 total length beyond the frame")
    }
    guard bytes.has(0, headerLength) else { return .issue(.truncated, "IPv4 options cut short") }
    packet.resetNetwork()
    packet.v6 = false
    packet.source = AddressBits(high: 0, low: UInt64(source))
    packet.destination = AddressBits(high: 0, low: UInt64(destination))
    packet.ttl = ttl
    packet.ipID = UInt32(id)
    packet.ipChecksum = checksum
    packet.dontFragment = fragmentField & 0x4000 != 0
    packet.ipLength = total
    packet.proto = proto
    let offset = fragmentField & 0x1FFF
    let more = fragmentField & 0x2000 != 0
    if offset != 0 {
      packet.fragment = true
      return .fragment
    }
    if more {
      packet.fragment = true
      packet.firstFragment = true
    }
    let clipped = bytes.prefix(total)
    guard let payload = clipped.suffix(from: headerLength) else {
      return .issue(.truncated, "IPv4 payload missing")
    }
    return transport(proto, payload, declaredLength: total - headerLength)
  }

  /// Dispatches on an IP protocol number to the transport decoders and the tunnels.
  mutating func transport(_ proto: UInt8, _ bytes: ByteView, declaredLength: Int) -> DecodeOutcome {
    switch proto {
    case 6: return tcp(bytes, declaredLength: declaredLength)
    case 17, 136: return udp(bytes, declaredLength: declaredLength)
    case 1: return icmp(bytes, declaredLength: declaredLength)
    case 58: return icmpv6(bytes, declaredLength: declaredLength)
    case 47: return gre(bytes)
    case 4, 41:
      // IP-in-IP (RFC 2003) and IPv6-in-IPv4 (RFC 4213): the payload is the inner packet.
      guard packet.tunnels < Self.maxTunnels else {
        return .issue(.unsupported, "tunnels nested deeper than lbscope follows")
      }
      if packet.firstFragment { return .ip }
      packet.tunnels += 1
      return proto == 4 ? ipv4(bytes) : ipv6(bytes)
    case 132, 33:
      // SCTP and DCCP: ports in the first four bytes.
      if let s = bytes.u16(0), let d = bytes.u16(2) {
        packet.hasTransport = true
        packet.sourcePort = s
        packet.destinationPort = d
      }
      return .ip
    default:
      return .ip
    }
  }
}
