import CNetfilterConntrack
import LBConntrack
import LBCore

#if canImport(Glibc)
  import Glibc
#endif

/// Owns one `struct nfct_handle` (libnetfilter_conntrack); `deinit` closes it with
/// `nfct_close`. Not thread-safe: one handle serves one caller at a time.
final class ConntrackHandle {
  let raw: OpaquePointer

  /// Opens a handle with `nfct_open(CONNTRACK, groups)`; `groups` 0 for dumps, or
  /// `NF_NETLINK_CONNTRACK_*` bits to subscribe to events.
  init(groups: UInt32) throws(NetlinkError) {
    guard let handle = nfct_open(UInt8(CONNTRACK), groups) else {
      throw NetlinkError(operation: groups == 0 ? "opening" : "subscribing to", errno: Glibc.errno)
    }
    raw = handle
  }

  deinit { nfct_close(raw) }

  /// The netlink socket, for `poll`.
  var descriptor: Int32 { nfct_fd(raw) }

  /// Calls `body` for every message the next `nfct_query` or `nfct_catch` delivers. The
  /// `nf_conntrack` is lent for the duration of the call only: copy what you need out of it.
  func withCallback<T>(
    _ handler: @escaping (nf_conntrack_msg_type, OpaquePointer) -> Void, _ body: () -> T
  ) -> T {
    let box = CallbackBox(handler)
    return withExtendedLifetime(box) {
      let context = Unmanaged.passUnretained(box).toOpaque()
      nfct_callback_register(
        raw, NFCT_T_ALL,
        { type, ct, data in
          guard let ct, let data else { return Int32(NFCT_CB_CONTINUE) }
          Unmanaged<CallbackBox>.fromOpaque(data).takeUnretainedValue().handler(type, ct)
          return Int32(NFCT_CB_CONTINUE)
        }, context)
      defer { nfct_callback_unregister(raw) }
      return body()
    }
  }

  final class CallbackBox {
    let handler: (nf_conntrack_msg_type, OpaquePointer) -> Void
    init(_ handler: @escaping (nf_conntrack_msg_type, OpaquePointer) -> Void) { self.handler = handler }
  }
}

/// Copies one lent `nf_conntrack` into values (`nfct_get_attr_*`); nothing here keeps the pointer.
enum ConntrackDecoder {
  /// The entry as the text reader would have produced it from the same connection's
  /// `conntrack -L` line.
  static func entry(_ ct: OpaquePointer, event: ConntrackEvent?) -> ConntrackEntry {
    var entry = ConntrackEntry()
    entry.event = event
    let l3 = nfct_get_attr_u8(ct, ATTR_L3PROTO)
    entry.proto = TransportProtocol(rawValue: nfct_get_attr_u8(ct, ATTR_L4PROTO))
    if isSet(ct, ATTR_TIMEOUT) { entry.timeout = nfct_get_attr_u32(ct, ATTR_TIMEOUT) }
    entry.original = tuple(ct, l3: l3, original: true, proto: entry.proto)
    entry.reply = tuple(ct, l3: l3, original: false, proto: entry.proto)
    entry.state = state(ct, proto: entry.proto)
    if isSet(ct, ATTR_STATUS) {
      let status = nfct_get_attr_u32(ct, ATTR_STATUS)
      entry.unreplied = status & UInt32(IPS_SEEN_REPLY.rawValue) == 0
      entry.assured = status & UInt32(IPS_ASSURED.rawValue) != 0
      entry.offloaded = status & (UInt32(1) << 14 | UInt32(1) << 15) != 0  // IPS_OFFLOAD, IPS_HW_OFFLOAD
    }
    if isSet(ct, ATTR_MARK) { entry.mark = nfct_get_attr_u32(ct, ATTR_MARK) }
    if isSet(ct, ATTR_ZONE) { entry.zone = nfct_get_attr_u16(ct, ATTR_ZONE) }
    if isSet(ct, ATTR_USE) { entry.use = nfct_get_attr_u32(ct, ATTR_USE) }
    if isSet(ct, ATTR_ID) { entry.id = nfct_get_attr_u32(ct, ATTR_ID) }
    return entry
  }

  /// `conntrack -L`'s line for the entry: `nfct_snprintf` with `NFCT_O_DEFAULT` and no flags is
  /// what the conntrack tool prints.
  static func text(_ ct: OpaquePointer, type: nf_conntrack_msg_type = NFCT_T_UNKNOWN) -> String {
    var buffer = [CChar](repeating: 0, count: 1024)
    let written = buffer.withUnsafeMutableBufferPointer { pointer in
      nfct_snprintf(
        pointer.baseAddress, UInt32(pointer.count), ct, UInt32(type.rawValue), UInt32(NFCT_O_DEFAULT), 0)
    }
    guard written > 0 else { return "" }
    return buffer.withUnsafeBufferPointer { pointer in
      // nfct_snprintf truncates at the buffer's size and always terminates the string.
      String(decoding: UnsafeRawBufferPointer(pointer).prefix(while: { $0 != 0 }), as: UTF8.self)
    }
  }

  static func isSet(_ ct: OpaquePointer, _ attribute: nf_conntrack_attr) -> Bool {
    nfct_attr_is_set(ct, attribute) > 0
  }

  static func tuple(
    _ ct: OpaquePointer, l3: UInt8, original: Bool, proto: TransportProtocol
  ) -> ConntrackTuple {
    var tuple = ConntrackTuple()
    if l3 == UInt8(AF_INET) {
      let (src, dst) =
        original ? (ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV4_DST) : (ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST)
      // The kernel hands addresses over in network byte order.
      if isSet(ct, src) { tuple.source = .v4(IPv4Address(UInt32(bigEndian: nfct_get_attr_u32(ct, src)))) }
      if isSet(ct, dst) {
        tuple.destination = .v4(IPv4Address(UInt32(bigEndian: nfct_get_attr_u32(ct, dst))))
      }
    } else if l3 == UInt8(AF_INET6) {
      let (src, dst) =
        original ? (ATTR_ORIG_IPV6_SRC, ATTR_ORIG_IPV6_DST) : (ATTR_REPL_IPV6_SRC, ATTR_REPL_IPV6_DST)
      tuple.source = ipv6(ct, src)
      tuple.destination = ipv6(ct, dst)
    }
    if proto.hasPorts {
      let (sport, dport) =
        original ? (ATTR_ORIG_PORT_SRC, ATTR_ORIG_PORT_DST) : (ATTR_REPL_PORT_SRC, ATTR_REPL_PORT_DST)
      if isSet(ct, sport) { tuple.sourcePort = UInt16(bigEndian: nfct_get_attr_u16(ct, sport)) }
      if isSet(ct, dport) { tuple.destinationPort = UInt16(bigEndian: nfct_get_attr_u16(ct, dport)) }
    } else if proto == .icmp || proto == .icmpv6 {
      // libnetfilter_conntrack keeps one ICMP type, code and id (the original direction's);
      // the id names the flow both ways.
      if isSet(ct, ATTR_ICMP_ID) { tuple.icmpID = UInt16(bigEndian: nfct_get_attr_u16(ct, ATTR_ICMP_ID)) }
      if original {
        if isSet(ct, ATTR_ICMP_TYPE) { tuple.icmpType = nfct_get_attr_u8(ct, ATTR_ICMP_TYPE) }
        if isSet(ct, ATTR_ICMP_CODE) { tuple.icmpCode = nfct_get_attr_u8(ct, ATTR_ICMP_CODE) }
      }
    }
    let (packets, bytes) =
      original
      ? (ATTR_ORIG_COUNTER_PACKETS, ATTR_ORIG_COUNTER_BYTES)
      : (ATTR_REPL_COUNTER_PACKETS, ATTR_REPL_COUNTER_BYTES)
    // Counters exist only while nf_conntrack_acct is on.
    if isSet(ct, packets) { tuple.packets = nfct_get_attr_u64(ct, packets) }
    if isSet(ct, bytes) { tuple.bytes = nfct_get_attr_u64(ct, bytes) }
    return tuple
  }

  static func ipv6(_ ct: OpaquePointer, _ attribute: nf_conntrack_attr) -> IPAddress? {
    guard isSet(ct, attribute), let pointer = nfct_get_attr(ct, attribute) else { return nil }
    // A `struct in6_addr`: 16 bytes, network order.
    var high: UInt64 = 0
    var low: UInt64 = 0
    let bytes = UnsafeRawBufferPointer(start: pointer, count: 16)
    for i in 0..<8 { high = high << 8 | UInt64(bytes[i]) }
    for i in 8..<16 { low = low << 8 | UInt64(bytes[i]) }
    return .v6(IPv6Address(high: high, low: low))
  }

  /// The protocol state by the kernel's numbering (`enum tcp_conntrack`, `sctp_conntrack`,
  /// `ct_dccp_states` in include/uapi/linux/netfilter/nf_conntrack_*.h).
  static func state(_ ct: OpaquePointer, proto: TransportProtocol) -> ConnectionState? {
    switch proto {
    case .tcp:
      guard isSet(ct, ATTR_TCP_STATE) else { return nil }
      let tcp: [ConnectionState] = [
        .none, .synSent, .synReceived, .established, .finWait, .closeWait, .lastAck, .timeWait, .close,
        .synSent2,
      ]
      let value = Int(nfct_get_attr_u8(ct, ATTR_TCP_STATE))
      return value < tcp.count ? tcp[value] : nil
    case .sctp:
      guard isSet(ct, ATTR_SCTP_STATE) else { return nil }
      let sctp: [ConnectionState] = [
        .none, .closed, .cookieWait, .cookieEchoed, .established, .shutdownSent, .shutdownReceived,
        .shutdownAckSent, .heartbeatSent, .heartbeatAcked,
      ]
      let value = Int(nfct_get_attr_u8(ct, ATTR_SCTP_STATE))
      return value < sctp.count ? sctp[value] : nil
    case .dccp:
      guard isSet(ct, ATTR_DCCP_STATE) else { return nil }
      let dccp: [ConnectionState] = [
        .none, .request, .respond, .partOpen, .open, .closeReq, .closing, .timeWaitDCCP, .ignore, .invalid,
      ]
      let value = Int(nfct_get_attr_u8(ct, ATTR_DCCP_STATE))
      return value < dccp.count ? dccp[value] : nil
    default:
      return nil
    }
  }
}
