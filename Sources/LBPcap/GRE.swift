extension PacketDecoder {
  /// GRE (RFC 2784, RFC 2890; version 1 is PPTP's enhanced GRE, RFC 2637):
  ///
  ///     0 flags: C 0x8000, R 0x4000, K 0x2000, S 0x1000, (v1) A 0x0080; version in the low 3 bits
  ///     2 protocol type (an EtherType)
  ///     4 checksum + reserved (when C or R), key (when K), sequence (when S), ack (v1, when A)
  ///
  /// Payloads: IPv4, IPv6, transparent Ethernet bridging (0x6558), ERSPAN type II (0x88BE) and
  /// III (0x22EB). PPP inside PPTP is unsupported.
  mutating func gre(_ bytes: ByteView) -> DecodeOutcome {
    guard let flags = bytes.u16(0), let proto = bytes.u16(2) else {
      return .issue(.truncated, "GRE header cut short")
    }
    let version = flags & 0x7
    var length = 4
    switch version {
    case 0:
      if flags & 0xC000 != 0 { length += 4 }
      if flags & 0x4000 != 0 { return .issue(.unsupported, "GRE source routing") }
      if flags & 0x2000 != 0 { length += 4 }
      if flags & 0x1000 != 0 { length += 4 }
    case 1:
      length += 4  // key: payload length and call id
      if flags & 0x1000 != 0 { length += 4 }
      if flags & 0x0080 != 0 { length += 4 }
    default:
      return .issue(.malformed, "GRE version other than 0 or 1")
    }
    guard let inner = bytes.suffix(from: length) else { return .issue(.truncated, "GRE header cut short") }
    return greProtocol(proto, inner)
  }

  mutating func greProtocol(_ proto: UInt16, _ inner: ByteView) -> DecodeOutcome {
    switch proto {
    case 0x0800: return enterTunnel { $0.ipv4(inner) }
    case 0x86DD: return enterTunnel { $0.ipv6(inner) }
    case 0x6558: return enterTunnel { $0.ethernet(inner) }
    case 0x88BE:
      guard let frame = inner.suffix(from: 8) else { return .issue(.truncated, "ERSPAN header cut short") }
      return enterTunnel { $0.ethernet(frame) }
    case 0x22EB:
      guard let frame = inner.suffix(from: 12) else { return .issue(.truncated, "ERSPAN header cut short") }
      return enterTunnel { $0.ethernet(frame) }
    default:
      return .issue(.unsupported, "GRE payload protocol not supported")
    }
  }
}
