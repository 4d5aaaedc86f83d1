/// Decodes captured frames layer by layer into one reused `DecodedPacket`. One file per layer:
/// link (this file), IPv4, IPv6, TCP, UDP with its overlays, ICMP, GRE.
///
/// Depth limits keep hostile input bounded: `maxVLANTags` stacked tags, `maxExtensionHeaders`
/// IPv6 extension headers, `maxTunnels` nested encapsulations.
public struct PacketDecoder {
  public static let maxVLANTags = 4
  public static let maxExtensionHeaders = 8
  public static let maxTunnels = 3

  /// The last packet decoded.
  public var packet = DecodedPacket()
  /// Bytes of the frame not captured (original length − captured length): a header may claim
  /// them without being malformed.
  var snapMissing = 0

  public init() {}

  /// Decodes one captured frame.
  public mutating func decode(_ frame: CapturedPacket) -> DecodeOutcome {
    packet.reset()
    snapMissing = max(0, frame.originalLength - frame.data.count)
    return decode(frame.data, linkType: frame.linkType)
  }

  /// Decodes `bytes` as a frame of `linkType`.
  public mutating func decode(_ bytes: ByteView, linkType: LinkType) -> DecodeOutcome {
    switch linkType {
    case .ethernet: return ethernet(bytes)
    case .linuxSLL2: return sll2(bytes)
    case .linuxSLL: return sll(bytes)
    case .raw, .ipv4, .ipv6: return rawIP(bytes)
    case .null: return null(bytes, loop: false)
    case .loop: return null(bytes, loop: true)
    default: return .issue(.unsupported, "link type not supported")
    }
  }

  /// Ethernet II (IEEE 802.3): destination (6), source (6), EtherType (2), then 802.1Q / 802.1ad
  /// tags of 4 bytes (TCI, EtherType) each.
  mutating func ethernet(_ bytes: ByteView) -> DecodeOutcome {
    guard let type = bytes.u16(12), let rest = bytes.suffix(from: 14) else {
      return .issue(.truncated, "Ethernet header cut short")
    }
    return etherType(type, rest)
  }

  /// Dispatches on an EtherType, crossing VLAN tags, PPPoE sessions and MPLS labels.
  mutating func etherType(_ type: UInt16, _ bytes: ByteView) -> DecodeOutcome {
    var type = type
    var bytes = bytes
    while true {
      switch type {
      case 0x0800: return ipv4(bytes)
      case 0x86DD: return ipv6(bytes)
      case 0x8100, 0x88A8, 0x9100, 0x9200:
        // 802.1Q tag: TCI (2), inner EtherType (2).
        guard packet.vlanTags < Self.maxVLANTags else {
          return .issue(.unsupported, "more VLAN tags than lbscope crosses")
        }
        guard let inner = bytes.u16(2), let rest = bytes.suffix(from: 4) else {
          return .issue(.truncated, "VLAN tag cut short")
        }
        packet.vlanTags += 1
        type = inner
        bytes = rest
      case 0x8864:
        // PPPoE session (RFC 2516): ver/type, code, session (2), length (2), PPP protocol (2).
        guard let ppp = bytes.u16(6), let rest = bytes.suffix(from: 8) else {
          return .issue(.truncated, "PPPoE header cut short")
        }
        switch ppp {
        case 0x0021: return ipv4(rest)
        case 0x0057: return ipv6(rest)
        default: return .notIP
        }
      case 0x8847, 0x8848:
        // MPLS (RFC 3032): 4-byte labels until bottom of stack; the payload's version nibble
        // says which IP follows.
        var at = 0
        for _ in 0..<8 {
          guard let label = bytes.u32(at) else { return .issue(.truncated, "MPLS label cut short") }
          at += 4
          if label & 0x100 != 0 {
            guard let rest = bytes.suffix(from: at) else { return .issue(.truncated, "MPLS payload missing") }
            return rawIP(rest)
          }
        }
        return .issue(.unsupported, "MPLS label stack deeper than 8")
      default:
        return .notIP
      }
    }
  }

  /// LINUX_SLL2 (`tcpdump -i any` since libpcap 1.10), 20 bytes:
  ///
  ///     0  protocol (EtherType)   2  reserved
  ///     4  interface index        8  ARPHRD type   10 packet type   11 address length
  ///     12 link-layer address (8)
  mutating func sll2(_ bytes: ByteView) -> DecodeOutcome {
    guard let proto = bytes.u16(0), let index = bytes.u32(4), let hatype = bytes.u16(8),
      let kind = bytes.u8(10), let rest = bytes.suffix(from: 20)
    else { return .issue(.truncated, "LINUX_SLL2 header cut short") }
    packet.linkInterface = Int32(truncatingIfNeeded: index)
    packet.linkPacketType = kind
    return cookedPayload(proto: proto, hatype: hatype, rest)
  }

  /// LINUX_SLL (`tcpdump -i any` before libpcap 1.10), 16 bytes:
  ///
  ///     0 packet type   2 ARPHRD type   4 address length   6 address (8)   14 protocol
  mutating func sll(_ bytes: ByteView) -> DecodeOutcome {
    guard let kind = bytes.u16(0), let hatype = bytes.u16(2), let proto = bytes.u16(14),
      let rest = bytes.suffix(from: 16)
    else { return .issue(.truncated, "LINUX_SLL header cut short") }
    packet.linkPacketType = UInt8(truncatingIfNeeded: kind)
    return cookedPayload(proto: proto, hatype: hatype, rest)
  }

  mutating func cookedPayload(proto: UInt16, hatype: UInt16, _ rest: ByteView) -> DecodeOutcome {
    switch hatype {
    case 824: return .notIP  // ARPHRD_NETLINK: netlink messages, not packets
    case 778:  // ARPHRD_IPGRE: the protocol field is GRE's protocol type
      return greProtocol(proto, rest)
    default:
      // Protocol values below 0x0600 are Linux's pseudo types (802.3, 802.2 LLC, CAN, …).
      return proto < 0x0600 ? .notIP : etherType(proto, rest)
    }
  }

  /// A bare IP packet; the version nibble says which.
  mutating func rawIP(_ bytes: ByteView) -> DecodeOutcome {
    guard let first = bytes.u8(0) else { return .issue(.truncated, "empty packet") }
    switch first >> 4 {
    case 4: return ipv4(bytes)
    case 6: return ipv6(bytes)
    default: return .issue(.malformed, "raw packet is neither IPv4 nor IPv6")
    }
  }

  /// BSD loopback: a 4-byte address family, in the writer's byte order (NULL) or network
  /// order (LOOP). AF_INET is 2 everywhere; AF_INET6 is 24, 28 or 30 depending on the OS.
  mutating func null(_ bytes: ByteView, loop: Bool) -> DecodeOutcome {
    guard let raw = bytes.u32(0, bigEndian: true), let rest = bytes.suffix(from: 4) else {
      return .issue(.truncated, "loopback header cut short")
    }
    // A little-endian writer's small family number has its value in the first byte.
    let family = loop || raw & 0xFFFF_0000 == 0 ? raw : raw.byteSwapped
    switch family {
    case 2: return ipv4(rest)
    case 24, 28, 30: return ipv6(rest)
    default: return .notIP
    }
  }
}
