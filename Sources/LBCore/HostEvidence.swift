/// How many hosts appear to share one source address, estimated from packet evidence (see
/// `Sources/LBPcap/README.md`, "Hidden hosts"). A lower bound: the largest count any single
/// signal shows, since each signal counts something one host normally shows once.
public struct HostEstimate: Sendable, Hashable {
  /// The source address as packets arrived at the capture point.
  public var address: IPAddress
  /// Connections this address started (SYNs, or first packets for other protocols).
  public var connections: Int
  /// At least this many hosts stand behind `address`; 1 when no signal shows more.
  public var estimatedHosts: Int
  /// One line per signal that was measurable, with its count (`3 interleaved ephemeral-port
  /// runs toward 10.96.0.10:80`), in a fixed order.
  public var evidence: [String]

  public init(address: IPAddress, connections: Int, estimatedHosts: Int, evidence: [String]) {
    self.address = address
    self.connections = connections
    self.estimatedHosts = estimatedHosts
    self.evidence = evidence
  }
}

/// A cookie whose values each land on one backend: an affinity cookie set by an ingress or
/// proxy in front of the Service (ingress-nginx `INGRESSCOOKIE`/`route`, Envoy hash cookies),
/// or by the application itself.
public struct CookieAffinityObservation: Sendable, Hashable {
  /// The Service address the connections were made to (before DNAT).
  public var frontend: Endpoint
  public var proto: TransportProtocol
  public var name: String
  /// Distinct values seen on at least two connections.
  public var values: Int
  /// Connections whose cookie value was seen on at least two connections.
  public var connections: Int
  /// Share of those connections that went to their value's usual backend (1.0 = always).
  public var consistency: Double
  /// One value and its backend, for the report (`route=web-0 → 10.244.1.2:8080`).
  public var example: String

  public init(
    frontend: Endpoint, proto: TransportProtocol, name: String, values: Int, connections: Int,
    consistency: Double, example: String
  ) {
    self.frontend = frontend
    self.proto = proto
    self.name = name
    self.values = values
    self.connections = connections
    self.consistency = consistency
    self.example = example
  }
}
