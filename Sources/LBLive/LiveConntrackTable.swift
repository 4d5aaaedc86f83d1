import CNetfilterConntrack
import LBConntrack
import LBCore

#if canImport(Glibc)
  import Glibc
#endif

/// Which entries of the live table to keep. Every condition given must hold; `nil` matches all.
public struct ConntrackFilter: Sendable, Hashable {
  /// Conntrack zone (entries without a zone are in zone 0).
  public var zone: UInt16?
  /// Conntrack mark, compared whole.
  public var mark: UInt32?
  /// Original destination address (a Service frontend before DNAT).
  public var destination: IPAddress?
  /// Original destination port; only checked when given.
  public var destinationPort: UInt16?

  public init(
    zone: UInt16? = nil, mark: UInt32? = nil, destination: IPAddress? = nil, destinationPort: UInt16? = nil
  ) {
    self.zone = zone
    self.mark = mark
    self.destination = destination
    self.destinationPort = destinationPort
  }

  /// Whether the entry passes.
  public func matches(_ entry: ConntrackEntry) -> Bool {
    if let zone, (entry.zone ?? 0) != zone { return false }
    if let mark, (entry.mark ?? 0) != mark { return false }
    if let destination, entry.original.destination != destination { return false }
    if let destinationPort, entry.original.destinationPort != destinationPort { return false }
    return true
  }

  /// True when nothing is filtered.
  public var isEmpty: Bool { zone == nil && mark == nil && destination == nil && destinationPort == nil }
}

/// The kernel's conntrack table, read over netlink with libnetfilter_conntrack (no `conntrack`
/// binary needed). Each dump asks for IPv4 and then IPv6 entries (`nfct_query(NFCT_Q_DUMP)`).
///
/// Needs `CAP_NET_ADMIN` in the network namespace whose table it reads; without it every call
/// throws a `NetlinkError` whose category is `.missingPrivilege`.
public final class LiveConntrackTable {
  let handle: ConntrackHandle

  /// Opens a netlink socket to the table of the caller's network namespace.
  public init() throws(NetlinkError) {
    handle = try ConntrackHandle(groups: 0)
  }

  /// Dumps the table, handing each entry that passes `filter` to `observe` as it arrives (the
  /// entry is a copy; nothing outlives the callback). Returns how many entries the kernel sent.
  @discardableResult
  public func dump(
    filter: ConntrackFilter = ConntrackFilter(), observe: (ConntrackEntry) -> Void
  ) throws(NetlinkError) -> Int {
    try dumpRaw { ct in
      let entry = ConntrackDecoder.entry(ct, event: nil)
      if filter.matches(entry) { observe(entry) }
    }
  }

  /// Dumps the table as `conntrack -L` prints it (one line per entry, `nfct_snprintf` with the
  /// conntrack tool's default format), each entry passing `filter` handed to `line`.
  @discardableResult
  public func dumpText(
    filter: ConntrackFilter = ConntrackFilter(), line: (String) -> Void
  ) throws(NetlinkError) -> Int {
    try dumpRaw { ct in
      if filter.isEmpty || filter.matches(ConntrackDecoder.entry(ct, event: nil)) {
        line(ConntrackDecoder.text(ct))
      }
    }
  }

  func dumpRaw(_ each: (OpaquePointer) -> Void) throws(NetlinkError) -> Int {
    var count = 0
    var failure: Int32 = 0
    withoutActuallyEscaping(each) { each in
      handle.withCallback({ _, ct in
        count += 1
        each(ct)
      }) {
        for family in [UInt32(AF_INET), UInt32(AF_INET6)] {
          var family = family
          if nfct_query(handle.raw, NFCT_Q_DUMP, &family) != 0 {
            failure = errno
            return
          }
        }
      }
    }
    if failure != 0 { throw NetlinkError(operation: "dumping", errno: failure) }
    return count
  }
}
