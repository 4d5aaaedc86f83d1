extension PacketDecoder {
  /// UDP (RFC 768): source port, destination port, length (header included, ≥ 8), checksum.
  ///
  /// Datagrams to the overlay ports Kubernetes CNIs use are decapsulated: VXLAN (RFC 7348) on
  /// 4789 and on 8472 (Linux's and flannel's default), Geneve (RFC 8926) on 6081.
  mutating func udp(_ bytes: ByteView, declaredLength: Int) -> DecodeOutcome {
    guard let sp = bytes.u16(0), let dp = bytes.u16(2), let length = bytes.u16(4),
      let checksum = bytes.u16(6)
    else {
      if packet.firstFragment { return .ip }
      return .issue(.truncated, "UDP header cut short")
    }
    let udpLength = Int(length)
    // Length 0 is a UDP jumbogram (RFC 2675) or offloaded segment: trust the IP length.
    let effective = udpLength == 0 ? declaredLength : udpLength
    guard effective >= 8 else { return .issue(.malformed, "UDP length below 8 bytes") }
    guard effective <= declaredLength || packet.fragment else {
      return .issue(.malformed, "UDP length beyond the IP payload")
    }
    packet.hasTransport = true
    packet.sourcePort = sp
    packet.destinationPort = dp
    packet.l4Checksum = checksum
    packet.payloadLength = packet.fragment ? 0 : effective - 8
    let payload = bytes.prefix(effective).suffix(from: 8) ?? bytes.prefix(0)
    packet.payload = payload
    if packet.fragment { return .ip }
    switch dp {
    case 4789, 8472: return vxlan(payload)
    case 6081: return geneve(payload)
    default: return .ip
    }
  }

  /// VXLAN: flags (I = 0x08 marks a valid VNI), 3 reserved, VNI (3), reserved; then Ethernet.
  mutating func vxlan(_ bytes: ByteView) -> DecodeOutcome {
    guard let flags = bytes.u8(0), flags & 0x08 != 0, let inner = bytes.suffix(from: 8), inner.count >= 14
    else { return .ip }  // Not VXLAN after all: keep the UDP datagram.
    return enterTunnel { $0.ethernet(inner) }
  }

  /// Geneve: version (2 bits) / option length in 4-byte words (6), flags, protocol type (2),
  /// VNI (3), reserved; options; then the payload the protocol type names.
  mutating func geneve(_ bytes: ByteView) -> DecodeOutcome {
    guard let first = bytes.u8(0), first >> 6 == 0, let proto = bytes.u16(2) else {
      return .ip
    }
    let headerLength = 8 + Int(first & 0x3F) * 4
    guard let inner = bytes.suffix(from: headerLength) else {
      return .issue(.truncated, "Geneve options cut short")
    }
    switch proto {
    case 0x6558: return enterTunnel { $0.ethernet(inner) }
    case 0x0800: return enterTunnel { $0.ipv4(inner) }
    case 0x86DD: return enterTunnel { $0.ipv6(inner) }
    default: return .issue(.unsupported, "Geneve payload protocol not supported")
    }
  }

  /// Decodes an encapsulated packet, keeping the outer one if nesting is too deep. The outer
  /// packet's truncation beyond the tunnel header is the inner packet's truncation.
  mutating func enterTunnel(_ decodeInner: (inout PacketDecoder) -> DecodeOutcome) -> DecodeOutcome {
    guard packet.tunnels < Self.maxTunnels else {
      return .issue(.unsupported, "tunnels nested deeper than lbscope follows")
    }
    packet.tunnels += 1
    return decodeInner(&self)
  }
}
