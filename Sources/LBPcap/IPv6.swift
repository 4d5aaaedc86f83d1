extension PacketDecoder {
  /// IPv6 (RFC 8200):
  ///
  ///     0 version/traffic class/flow label   4 payload length   6 next header   7 hop limit
  ///     8 source (16)                        24 destination (16)
  ///
  /// then extension headers, at most `maxExtensionHeaders`: hop-by-hop (0), routing (43),
  /// destination options (60), mobility (135), HIP (139), shim6 (140) as
  /// (next header, length in 8-byte units − 1); fragment (44) as 8 bytes; AH (51) with its length
  /// in 4-byte units − 2. A payload length of 0 (a jumbogram, RFC 2675) uses the captured length.
  mutating func ipv6(_ bytes: ByteView) -> DecodeOutcome {
    guard let first = bytes.u8(0), let declared = bytes.u16(4), let next = bytes.u8(6),
      let hops = bytes.u8(7), let sh = bytes.u64(8), let sl = bytes.u64(16), let dh = bytes.u64(24),
      let dl = bytes.u64(32)
    else { return .issue(.truncated, "IPv6 header cut short") }
    guard first >> 4 == 6 else { return .issue(.malformed, "IPv6 header with another version") }
    var payloadLength = Int(declared)
    if payloadLength == 0 { payloadLength = bytes.count - 40 }
    guard payloadLength + 40 <= bytes.count + snapMissing else {
      return .issue(.malformed, "IPv6 payload length beyond the frame")
    }
    packet.resetNetwork()
    packet.v6 = true
    packet.source = AddressBits(high: sh, low: sl)
    packet.destination = AddressBits(high: dh, low: dl)
    packet.ttl = hops
    packet.ipLength = payloadLength + 40
    let clipped = bytes.prefix(payloadLength + 40)
    var header = next
    var at = 40
    for _ in 0...Self.maxExtensionHeaders {
      packet.proto = header
      switch header {
      case 0, 43, 60, 135, 139, 140:
        guard let following = clipped.u8(at), let units = clipped.u8(at + 1) else {
          return .issue(.truncated, "IPv6 extension header cut short")
        }
        header = following
        at += (Int(units) + 1) * 8
      case 51:
        guard let following = clipped.u8(at), let units = clipped.u8(at + 1) else {
          return .issue(.truncated, "IPv6 authentication header cut short")
        }
        header = following
        at += (Int(units) + 2) * 4
      case 44:
        // Fragment header: next header, reserved, offset (13 bits) / M, identification.
        guard let following = clipped.u8(at), let field = clipped.u16(at + 2),
          let id = clipped.u32(at + 4)
        else { return .issue(.truncated, "IPv6 fragment header cut short") }
        packet.ipID = id
        packet.fragment = true
        header = following
        at += 8
        if field >> 3 != 0 {
          packet.proto = following
          return .fragment
        }
        // An atomic fragment (offset 0, M clear, RFC 6946) is a whole packet.
        packet.firstFragment = field & 1 != 0
        if !packet.firstFragment { packet.fragment = false }
      case 59:
        return .ip  // No next header.
      case 50:
        return .issue(.unsupported, "IPv6 ESP payload is encrypted")
      default:
        guard let payload = clipped.suffix(from: at) else {
          return .issue(.truncated, "IPv6 extension headers run past the packet")
        }
        return transport(header, payload, declaredLength: payloadLength + 40 - at)
      }
      if at > payloadLength + 40 { return .issue(.malformed, "IPv6 extension header beyond the payload") }
    }
    return .issue(.unsupported, "more IPv6 extension headers than lbscope crosses")
  }
}
