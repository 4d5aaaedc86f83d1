import LBCore

/// Why a live capture could not start or go on. Missing privilege (`CAP_NET_RAW`) is its own
/// category so the command line exits 77 with a way to capture without lbscope.
public struct CaptureError: LocatedError {
  public enum Code: Sendable {
    /// `pcap_activate` said PCAP_ERROR_PERM_DENIED (or the socket call got EPERM).
    case permissionDenied
    /// The interface does not exist or cannot capture.
    case noSuchInterface
    /// The `--filter` expression does not compile for the interface.
    case badFilter
    /// Another libpcap failure while opening or reading.
    case capture
    /// A capture file cannot be created, written or renamed.
    case cannotWrite
  }

  public var code: Code
  /// The interface or file concerned.
  public var path: String?
  public var reason: String
  public var hint: String

  public init(code: Code, path: String?, reason: String, hint: String) {
    self.code = code
    self.path = path
    self.reason = reason
    self.hint = hint
  }

  public var line: Int? { nil }

  public var category: FailureCategory {
    switch code {
    case .permissionDenied: .missingPrivilege
    case .noSuchInterface, .capture: .unreadableInput
    case .badFilter: .usage
    case .cannotWrite: .unwritableOutput
    }
  }

  /// The one-line refusal when the process may not open capture sockets.
  static func permission(_ interface: String, _ message: String) -> CaptureError {
    CaptureError(
      code: .permissionDenied, path: nil,
      reason: "capturing on \(interface) needs CAP_NET_RAW (\(message))",
      hint:
        "run as root (sudo), or capture with `tcpdump -i any -w node.pcap` and run `lbscope pcap node.pcap`")
  }
}
