/// One packet walked through a node's rules (`lbscope rules --trace`): each chain it passes and
/// where it may end, with the chance of each ending.
public struct PacketTrace: Sendable {
  public struct Step: Sendable {
    /// Nesting depth (0: a built-in chain).
    public var depth: Int
    public var table: String
    public var chain: String
    /// The rule's input line, when the step is a rule.
    public var line: Int?
    /// What happened, in words (`jump to KUBE-SVC-…`, `probability 0.25: taken`).
    public var text: String
    /// The chance that the packet gets here.
    public var chance: Double
    public init(depth: Int, table: String, chain: String, line: Int?, text: String, chance: Double) {
      self.depth = depth
      self.table = table
      self.chain = chain
      self.line = line
      self.text = text
      self.chance = chance
    }
  }

  /// A way the walk can end.
  public struct Outcome: Sendable {
    /// The DNAT destination, when the packet is translated.
    public var destination: Endpoint?
    /// `dnat`, `accept` (no translation: leaves the chain unchanged), `drop`, `reject`.
    public var verdict: String
    public var chance: Double
    /// Whether the packet was marked for masquerade on the way.
    public var masqueraded: Bool
    /// The endpoint chain or the last chain passed.
    public var chain: String
    public init(destination: Endpoint?, verdict: String, chance: Double, masqueraded: Bool, chain: String) {
      self.destination = destination
      self.verdict = verdict
      self.chance = chance
      self.masqueraded = masqueraded
      self.chain = chain
    }
  }

  public var source: Endpoint
  public var destination: Endpoint
  public var proto: TransportProtocol
  public var steps: [Step] = []
  public var outcomes: [Outcome] = []
  /// What the walk had to assume (matches it cannot evaluate, affinity state unknown).
  public var assumptions: [String] = []

  public init(source: Endpoint, destination: Endpoint, proto: TransportProtocol) {
    self.source = source
    self.destination = destination
    self.proto = proto
  }
}
