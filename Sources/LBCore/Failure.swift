/// The broad kinds of failure the command line maps to exit codes.
public enum FailureCategory: Sendable {
  /// The input cannot be opened or read (missing, permission, a directory, an I/O error).
  case unreadableInput
  /// The input was read but is not in any format lbscope reads.
  case unrecognizedInput
  /// The needed privilege or capability is missing.
  case missingPrivilege
  /// The output cannot be written.
  case unwritableOutput
  /// A bad combination of arguments.
  case usage
}

/// An error that can say where it happened and what to do about it, printed by the command
/// line as `lbscope: PATH:LINE: what is wrong; what to do`.
public protocol LocatedError: Error, CustomStringConvertible {
  var category: FailureCategory { get }
  /// The file (or `-`), if the error concerns one.
  var path: String? { get }
  /// 1-based line (text) or record number (binary), if known.
  var line: Int? { get }
  var reason: String { get }
  var hint: String { get }
}

extension LocatedError {
  public var description: String {
    var location = ""
    if let path {
      location = path
      if let line { location += ":\(line)" }
      location += ": "
    }
    return hint.isEmpty ? "\(location)\(reason)" : "\(location)\(reason); \(hint)"
  }
}
