import LBCore

/// A rules input that cannot be read at all. Damage inside a readable input is counted in its
/// `InputSummary` instead, so one bad line never hides the services the rest describes.
public struct RulesReaderError: LocatedError {
  public enum Code: Sendable {
    /// The file cannot be opened or read.
    case cannotOpen
    case cannotRead
    /// Nothing in it looks like any rules format lbscope reads.
    case notRules
  }

  public var code: Code
  public var path: String?
  public var line: Int?
  public var reason: String
  public var hint: String

  public init(code: Code, path: String?, line: Int? = nil, reason: String, hint: String) {
    self.code = code
    self.path = path
    self.line = line
    self.reason = reason
    self.hint = hint
  }

  public var category: FailureCategory {
    switch code {
    case .cannotOpen, .cannotRead: .unreadableInput
    case .notRules: .unrecognizedInput
    }
  }

  /// The formats `lbscope rules` reads, for "not a rules file" messages.
  public static let knownFormats =
    "iptables-save (-c), nft list ruleset / nft -f transactions, ipvsadm -Ln (--stats, --rate, -c, --persistent-conn), ipvsadm -S -n, /proc/net/xt_recent/*"
}

/// The rules formats lbscope reads, as `--format` names them.
public enum RulesFormat: String, Sendable, CaseIterable {
  case iptablesSave = "iptables-save"
  case nft
  case ipvs
  case xtRecent = "xt-recent"
}
