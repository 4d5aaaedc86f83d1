import LBCore

/// A port or a port range (`--dport 80`, `--dport 30000:32767`).
public struct PortRange: Hashable, Sendable, CustomStringConvertible {
  public var lower: UInt16
  public var upper: UInt16
  public init(_ lower: UInt16, _ upper: UInt16) {
    self.lower = lower
    self.upper = upper
  }
  public func contains(_ port: UInt16) -> Bool { lower <= port && port <= upper }
  public var single: UInt16? { lower == upper ? lower : nil }
  public var description: String { lower == upper ? "\(lower)" : "\(lower):\(upper)" }
}

/// What an `-m recent` match does with its list (xt_recent, iptables-extensions(8)).
public enum RecentCommand: String, Hashable, Sendable {
  /// `--set`: add or refresh the source in the list (kube-proxy: in the endpoint chain).
  case set
  /// `--rcheck`: match when the source is in the list (kube-proxy: affinity check).
  case rcheck
  case update
  case remove
}

/// One `-m recent` match. kube-proxy writes its options in either order
/// (`--rcheck --seconds N --reap --name X` and `--name X --rcheck --seconds N --reap`).
public struct RecentMatch: Hashable, Sendable {
  public var command: RecentCommand?
  /// The list, `/proc/net/xt_recent/NAME`; `DEFAULT` when not named.
  public var name: String
  public var seconds: Int32?
  public var reap: Bool
  public var hitCount: Int32?
}

/// A `-m mark --mark VALUE/MASK` match.
public struct MarkMatch: Hashable, Sendable {
  public var value: UInt32
  public var mask: UInt32
}

/// How `-j MARK` changes the packet mark: `mark = (mark & ~clear) ^ toggle` covers every form
/// (`--set-xmark V/M`: clear M, toggle V; `--or-mark V`: clear V, toggle V; `--xor-mark V`:
/// toggle V; `--and-mark V`: clear ~V; `--set-mark V/M`: clear M, toggle V).
public struct MarkChange: Hashable, Sendable {
  public var clear: UInt32
  public var toggle: UInt32

  public func apply(_ mark: UInt32) -> UInt32 { (mark & ~clear) ^ toggle }
  /// The bits this change always sets, whatever the mark was.
  public var setsBits: UInt32 { clear & toggle }
}

/// What a rule does when it matches.
public enum RuleTarget: Hashable, Sendable {
  /// `-j CHAIN` (a user chain of the same table; index into `IptablesDump.chains`).
  case jump(Int)
  /// `-g CHAIN`: like a jump, but RETURN from there returns past this chain.
  case goto(Int)
  /// `-j DNAT --to-destination IP:PORT`; `nil` when the destination names no endpoint.
  case dnat(Endpoint?)
  case mark(MarkChange)
  case masquerade
  case snat
  case accept
  case drop
  case reject
  case `return`
  /// No `-j`: the rule only counts (kube-proxy writes such comment-only rules).
  case none
  /// Any other target (`LOG`, `CT`, `NFLOG`, …), by name.
  case other(String)
}

/// One `-A` rule of an iptables-save dump, with the matches lbscope understands.
/// Unknown matches are kept as a flag, so a trace can say it assumed them true.
public struct IptablesRule: Sendable {
  // Stored compactly: a 10,000-service dump has 330,000 rules.
  var storedLine: Int32
  var storedChain: Int32
  var storedPackets: UInt64 = 0
  var storedBytes: UInt64 = 0
  var hasCounters = false
  /// 1-based line in the input.
  public var line: Int { Int(storedLine) }
  /// Index of the rule's chain in `IptablesDump.chains`.
  public var chain: Int { Int(storedChain) }
  /// `[packets:bytes]` of `iptables-save -c` (or `-c P B` of `iptables -S -v`).
  public var packets: UInt64? {
    get { hasCounters ? storedPackets : nil }
    set {
      storedPackets = newValue ?? 0
      hasCounters = newValue != nil
    }
  }
  public var bytes: UInt64? {
    get { hasCounters ? storedBytes : nil }
    set { storedBytes = newValue ?? 0 }
  }
  public var source: IPPrefix?
  public var sourceNegated = false
  public var destination: IPPrefix?
  public var destinationNegated = false
  public var proto: TransportProtocol?
  public var protoNegated = false
  public var destinationPort: PortRange?
  public var destinationPortNegated = false
  public var sourcePort: PortRange?
  /// `-m addrtype --dst-type LOCAL` / `--src-type LOCAL` (other types are kept as unknown
  /// matches).
  public var destinationLocal: Bool?
  public var sourceLocal: Bool?
  public var comment: String?
  /// `-m statistic --mode random --probability P`.
  public var probability: Double?
  /// `-m statistic --mode nth`: a deterministic cascade lbscope does not model as chances.
  public var nth = false
  public var recent: RecentMatch?
  /// `-m conntrack --ctstate …` / `-m state --state …`: whether a new connection (NEW, and
  /// DNAT once translated) matches; `nil` without such a match.
  public var matchesNewConnection: Bool?
  public var mark: MarkMatch?
  public var markNegated = false
  /// Matches lbscope does not evaluate (`-m conntrack`, `-m nfacct`, `-i`, …), as bits of
  /// `IptablesDump.matchNames`.
  public var otherMatches: UInt64 = 0
  public var target: RuleTarget = .none

  init(line: Int, chain: Int) {
    storedLine = Int32(clamping: line)
    storedChain = Int32(clamping: chain)
  }

  /// True when the rule matches only some sources (`-s`, `--src-type LOCAL`, not negated).
  var selectsSources: Bool { (source != nil && !sourceNegated) || sourceLocal == true }

  /// True when the rule selects a destination (a frontend): `-d` or `--dport`.
  var selectsDestination: Bool { (destination != nil && !destinationNegated) || destinationPort != nil }
}

/// One chain of one table.
public struct IptablesChain: Sendable {
  public var table: String
  public var name: String
  /// `ACCEPT`/`DROP` for built-in chains, `nil` for user chains.
  public var policy: String?
  /// The rules, as indices into `IptablesDump.rules`, in order.
  public var rules: [Int] = []
  /// 1-based line of the chain's declaration or first rule.
  public var line: Int
}

/// A parsed iptables-save (or `iptables -S`) dump: every table's chains and rules, in order.
public struct IptablesDump: Sendable {
  public var chains: [IptablesChain] = []
  public var rules: [IptablesRule] = []
  /// `iptables-save v1.8.9 (nf_tables)` from the header, when present.
  public var generator: String?
  /// True when the dump came from ip6tables-save (IPv6 addresses).
  public var sawIPv6 = false
  /// Names of the matches lbscope does not evaluate; bit i of `IptablesRule.otherMatches`.
  public var matchNames: [String] = []

  /// The names of a rule's unevaluated matches.
  public func otherMatches(of rule: IptablesRule) -> [String] {
    matchNames.indices.filter { $0 < 64 && rule.otherMatches & (1 << UInt64($0)) != 0 }.map { matchNames[$0] }
  }

  mutating func matchBit(_ name: String) -> UInt64 {
    if let i = matchNames.firstIndex(of: name) { return i < 64 ? 1 << UInt64(i) : 0 }
    matchNames.append(name)
    return matchNames.count <= 64 ? 1 << UInt64(matchNames.count - 1) : 0
  }
  var index: [ChainKey: Int] = [:]

  struct ChainKey: Hashable {
    var table: String
    var name: String
  }

  public init() {}

  /// The chain `name` of `table`, if the dump has it.
  public func chain(_ name: String, table: String = "nat") -> Int? {
    index[ChainKey(table: table, name: name)]
  }

  mutating func chainIndex(table: String, name: String, line: Int) -> Int {
    let key = ChainKey(table: table, name: name)
    if let existing = index[key] { return existing }
    chains.append(IptablesChain(table: table, name: name, policy: nil, line: line))
    index[key] = chains.count - 1
    return chains.count - 1
  }
}
