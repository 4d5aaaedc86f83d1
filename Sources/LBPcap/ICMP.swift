extension PacketDecoder {
  /// ICMP (RFC 792): type, code, checksum, then for echo (0, 8) identifier and sequence, and
  /// for errors (3 unreachable, 4 source quench, 5 redirect, 11 time exceeded, 12 parameter
  /// problem) 4 bytes and the offending packet's IP header plus at least 8 bytes of its payload.
  ///
  /// Echo packets carry the identifier in both port fields, as conntrack keys them. Errors name
  /// the flow they are about in `quoted`.
  mutating func icmp(_ bytes: ByteView, declaredLength: Int) -> DecodeOutcome {
    guard let type = bytes.u8(0), let code = bytes.u8(1), let checksum = bytes.u16(2) else {
      return .issue(.truncated, "ICMP header cut short")
    }
    packet.hasTransport = true
    packet.icmpType = type
    packet.icmpCode = code
    packet.l4Checksum = checksum
    packet.payloadLength = max(0, declaredLength - 8)
    switch type {
    case 0, 8, 13, 14:
      let id = bytes.u16(4) ?? 0
      packet.sourcePort = id
      packet.destinationPort = id
      packet.seq = UInt32(bytes.u16(6) ?? 0)
    case 3, 4, 5, 11, 12:
      guard let quoted = bytes.suffix(from: 8), quoteV4(quoted) else {
        return .issue(.truncated, "ICMP error quotes too little of the packet")
      }
      packet.icmpError = true
      packet.icmpUnreachable = type == 3
    default:
      break
    }
    return .ip
  }

  /// ICMPv6 (RFC 4443): errors 1 (unreachable), 2 (too big), 3 (time exceeded), 4 (parameter
  /// problem) quote the offending IPv6 packet after 4 more bytes; echo 128/129 has identifier
  /// and sequence.
  mutating func icmpv6(_ bytes: ByteView, declaredLength: Int) -> DecodeOutcome {
    guard let type = bytes.u8(0), let code = bytes.u8(1), let checksum = bytes.u16(2) else {
      return .issue(.truncated, "ICMPv6 header cut short")
    }
    packet.hasTransport = true
    packet.icmpType = type
    packet.icmpCode = code
    packet.l4Checksum = checksum
    packet.payloadLength = max(0, declaredLength - 8)
    switch type {
    case 128, 129:
      let id = bytes.u16(4) ?? 0
      packet.sourcePort = id
      packet.destinationPort = id
      packet.seq = UInt32(bytes.u16(6) ?? 0)
    case 1, 2, 3, 4:
      guard let quoted = bytes.suffix(from: 8), quoteV6(quoted) else {
        return .issue(.truncated, "ICMPv6 error quotes too little of the packet")
      }
      packet.icmpError = true
      packet.icmpUnreachable = type == 1
    default:
      break
    }
    return .ip
  }

  /// The quoted IPv4 header and, when present, the ports after it.
  mutating func quoteV4(_ q: ByteView) -> Bool {
    guard let first = q.u8(0), first >> 4 == 4, let proto = q.u8(9), let s = q.u32(12),
      let d = q.u32(16)
    else { return false }
    let headerLength = Int(first & 0x0F) * 4
    guard headerLength >= 20 else { return false }
    packet.quoted = QuotedTuple(
      v6: false, proto: proto, source: AddressBits(high: 0, low: UInt64(s)),
      destination: AddressBits(high: 0, low: UInt64(d)),
      sourcePort: q.u16(headerLength) ?? 0, destinationPort: q.u16(headerLength + 2) ?? 0)
    if proto == 1 {
      // A quoted echo: its identifier keys the flow.
      let id = q.u16(headerLength + 4) ?? 0
      packet.quoted.sourcePort = id
      packet.quoted.destinationPort = id
    }
    return true
  }

  /// The quoted IPv6 header, crossing extension headers (capped), and the ports after it.
  mutating func quoteV6(_ q: ByteView) -> Bool {
    guard let first = q.u8(0), first >> 4 == 6, var next = q.u8(6), let sh = q.u64(8),
      let sl = q.u64(16), let dh = q.u64(24), let dl = q.u64(32)
    else { return false }
    var at = 40
    for _ in 0..<Self.maxExtensionHeaders {
      switch next {
      case 0, 43, 60, 135:
        guard let following = q.u8(at), let units = q.u8(at + 1) else { return true }
        next = following
        at += (Int(units) + 1) * 8
      case 44:
        guard let following = q.u8(at) else { return true }
        next = following
        at += 8
      default:
        break
      }
    }
    packet.quoted = QuotedTuple(
      v6: true, proto: next, source: AddressBits(high: sh, low: sl),
      destination: AddressBits(high: dh, low: dl), sourcePort: q.u16(at) ?? 0,
      destinationPort: q.u16(at + 2) ?? 0)
    if next == 58 {
      let id = q.u16(at + 4) ?? 0
      packet.quoted.sourcePort = id
      packet.quoted.destinationPort = id
    }
    return true
  }
}
