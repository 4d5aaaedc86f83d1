/// A transport protocol by its IANA number. Unknown numbers stay representable.
public struct TransportProtocol: RawRepresentable, Hashable, Comparable, Sendable,
  CustomStringConvertible
{
  public var rawValue: UInt8
  @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

  @inlinable public static var icmp: TransportProtocol { TransportProtocol(rawValue: 1) }
  @inlinable public static var tcp: TransportProtocol { TransportProtocol(rawValue: 6) }
  @inlinable public static var udp: TransportProtocol { TransportProtocol(rawValue: 17) }
  @inlinable public static var dccp: TransportProtocol { TransportProtocol(rawValue: 33) }
  @inlinable public static var gre: TransportProtocol { TransportProtocol(rawValue: 47) }
  @inlinable public static var icmpv6: TransportProtocol { TransportProtocol(rawValue: 58) }
  @inlinable public static var sctp: TransportProtocol { TransportProtocol(rawValue: 132) }
  @inlinable public static var udplite: TransportProtocol { TransportProtocol(rawValue: 136) }

  /// Lowercase name as conntrack and the report contract spell it (`tcp`, `udp`, `sctp`, …),
  /// or the number for protocols without one.
  public var description: String {
    switch self {
    case .icmp: "icmp"
    case .tcp: "tcp"
    case .udp: "udp"
    case .dccp: "dccp"
    case .gre: "gre"
    case .icmpv6: "icmpv6"
    case .sctp: "sctp"
    case .udplite: "udplite"
    default: String(rawValue)
    }
  }

  /// Whether the protocol has ports, so that `IP:port` names a service.
  public var hasPorts: Bool {
    self == .tcp || self == .udp || self == .sctp || self == .dccp || self == .udplite
  }

  public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// An address and a port. For protocols without ports the port is 0.
public struct Endpoint: Hashable, Comparable, Sendable, CustomStringConvertible {
  public var address: IPAddress
  public var port: UInt16

  @inlinable public init(_ address: IPAddress, _ port: UInt16) {
    self.address = address
    self.port = port
  }

  /// `IP:port` for IPv4 and `[IP]:port` for IPv6, as the report contract spells endpoints.
  public var description: String {
    switch address {
    case .v4(let a):
      withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 21) { buffer in
        var i = a.writeDecimal(into: buffer, at: 0)
        buffer[i] = 0x3A  // ":"
        i += 1
        var digits = 10000
        var started = false
        var rest = Int(port)
        while digits > 0 {
          let digit = rest / digits
          rest %= digits
          if digit > 0 || started || digits == 1 {
            buffer[i] = 0x30 + UInt8(digit)
            i += 1
            started = true
          }
          digits /= 10
        }
        return String(decoding: UnsafeBufferPointer(rebasing: buffer[..<i]), as: UTF8.self)
      }
    case .v6(let a): "[\(a.description)]:\(port)"
    }
  }

  /// Parses `IP:port` or `[IPv6]:port`.
  public init?(_ text: String) {
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]") else { return nil }
      let inner = String(text[text.index(after: text.startIndex)..<close])
      let rest = text[text.index(after: close)...]
      guard rest.hasPrefix(":"), let port = UInt16(rest.dropFirst()),
        let v6 = IPv6Address(inner)
      else { return nil }
      self.init(.v6(v6), port)
      return
    }
    guard let colon = text.lastIndex(of: ":"),
      let v4 = IPv4Address(String(text[..<colon])),
      let port = UInt16(text[text.index(after: colon)...])
    else { return nil }
    self.init(.v4(v4), port)
  }

  public static func < (lhs: Self, rhs: Self) -> Bool {
    (lhs.address, lhs.port) < (rhs.address, rhs.port)
  }
}

/// The 5-tuple of one direction of a connection: protocol, source and destination.
///
/// For ICMP and ICMPv6 the echo identifier stands in both port fields, so a request and its
/// reply (whose types differ) key one flow and a reply tuple reverses onto its original.
public struct FiveTuple: Hashable, Sendable, CustomStringConvertible {
  public var proto: TransportProtocol
  public var source: Endpoint
  public var destination: Endpoint

  @inlinable
  public init(proto: TransportProtocol, source: Endpoint, destination: Endpoint) {
    self.proto = proto
    self.source = source
    self.destination = destination
  }

  /// The same connection seen from the other side.
  @inlinable public var reversed: FiveTuple {
    FiveTuple(proto: proto, source: destination, destination: source)
  }

  public var description: String { "\(proto) \(source) → \(destination)" }
}
