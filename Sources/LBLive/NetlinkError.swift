import LBCore

#if canImport(Glibc)
  import Glibc
#endif

/// Why talking to the kernel's conntrack table over netlink failed. Carries the errno of the
/// failing call; `EPERM` and `EACCES` mean the process lacks `CAP_NET_ADMIN`.
public struct NetlinkError: LocatedError {
  /// What lbscope was doing: `open`, `dump`, `subscribe`, `receive`.
  public var operation: String
  /// The C `errno` the call left, 0 when it did not set one.
  public var errno: Int32

  public init(operation: String, errno: Int32) {
    self.operation = operation
    self.errno = errno
  }

  /// The call failed because the process lacks the capability, not because of the kernel.
  public var isPermissionDenied: Bool { errno == EPERM || errno == EACCES }

  public var category: FailureCategory { isPermissionDenied ? .missingPrivilege : .unreadableInput }
  public var path: String? { nil }
  public var line: Int? { nil }

  public var reason: String {
    let text = String(cString: strerror(errno))
    if isPermissionDenied {
      return "\(operation) the conntrack table over netlink needs CAP_NET_ADMIN (\(text))"
    }
    return "\(operation) the conntrack table over netlink failed: \(text) (errno \(errno))"
  }

  public var hint: String {
    if isPermissionDenied {
      return
        "run as root (sudo), or save the table with `conntrack -L > dump.txt` and run `lbscope conntrack dump.txt`, or read a bundle saved by `lbscope collect`"
    }
    if errno == EPROTONOSUPPORT || errno == ENOENT {
      return "load the nf_conntrack_netlink module, or analyse a saved `conntrack -L` dump"
    }
    return "analyse a saved `conntrack -L` dump instead"
  }
}
