/// What kind of input a file or source was, as the report contract names it.
public enum InputKind: String, Sendable, CaseIterable {
  case conntrack
  case conntrackEvents = "conntrack-events"
  case iptablesSave = "iptables-save"
  case nft
  case ipvs
  case xtRecent = "xt-recent"
  case pcap
  case bundle
  case liveConntrack = "live-conntrack"
  case liveCapture = "live-capture"
  /// An lbscope JSON report, read back by `lbscope merge`.
  case report
}

/// The three ways a record can fail to be understood. They are reported separately because
/// they call for different actions: re-collect (truncated), report a bug or discard
/// (malformed), or wait for support (unsupported).
public enum InputIssueKind: String, Sendable, CaseIterable {
  /// The record stops early: a cut line, a short packet, a file that ends mid-record.
  case truncated
  /// The record is complete but contradicts its format.
  case malformed
  /// The record is well formed but of a kind lbscope does not read.
  case unsupported
}

/// One problem with one record, with enough location to find it.
public struct InputIssue: Hashable, Sendable {
  public var kind: InputIssueKind
  /// 1-based line (text) or record number (binary); 0 for the input as a whole.
  public var line: Int
  public var message: String

  public init(kind: InputIssueKind, line: Int, message: String) {
    self.kind = kind
    self.line = line
    self.message = message
  }
}

/// What reading one input produced: how many records, what went wrong, whether it is partial.
public struct InputSummary: Sendable {
  /// As the user named it (`-` for standard input).
  public var path: String
  public var kind: InputKind
  /// Lines, entries or packets read.
  public var records: Int = 0
  public var truncated: Int = 0
  public var malformed: Int = 0
  public var unsupported: Int = 0
  /// The first few issues, in input order, for the report's appendix.
  public var examples: [InputIssue] = []
  /// True when the input ended early or was cut, so counts from it are lower bounds.
  public var partial: Bool = false
  /// Free-form facts about the input worth showing (`conntrack-tools v1.4.7`, a declared total).
  public var notes: [String] = []

  /// How many issue examples are kept per input.
  public static let exampleLimit = 10

  public init(path: String, kind: InputKind) {
    self.path = path
    self.kind = kind
  }

  public var issueCount: Int { truncated + malformed + unsupported }

  /// Counts one issue and keeps it as an example while there is room.
  public mutating func record(_ issue: InputIssue) {
    switch issue.kind {
    case .truncated: truncated += 1
    case .malformed: malformed += 1
    case .unsupported: unsupported += 1
    }
    if examples.count < Self.exampleLimit { examples.append(issue) }
  }
}
