import LBCore
import SystemPackage

/// Why a capture could not be read at all. Damage inside a capture is not thrown: it is counted
/// in the input's `InputSummary`, and the packets before it are still analysed.
public struct PcapError: LocatedError {
  public enum Code: Sendable {
    /// The file cannot be opened.
    case cannotOpen
    /// Reading failed (an I/O error).
    case cannotRead
    /// The file starts with neither a pcap nor a pcapng magic number.
    case notCapture
    /// The `--filter` expression does not compile.
    case badFilter
  }

  public var code: Code
  public var path: String?
  /// Byte offset in the file, when the error concerns a place in it.
  public var byteOffset: Int?
  public var reason: String
  public var hint: String
  public var errno: Errno?

  public var line: Int? { nil }

  public var category: FailureCategory {
    switch code {
    case .cannotOpen, .cannotRead: .unreadableInput
    case .notCapture: .unrecognizedInput
    case .badFilter: .usage
    }
  }

  public init(
    code: Code, path: String?, byteOffset: Int? = nil, reason: String, hint: String,
    errno: Errno? = nil
  ) {
    self.code = code
    self.path = path
    self.byteOffset = byteOffset
    self.reason = byteOffset.map { "\(reason) (at byte \($0))" } ?? reason
    self.hint = hint
    self.errno = errno
  }
}
