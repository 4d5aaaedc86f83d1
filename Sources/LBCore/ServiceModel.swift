/// What a node's datapath says traffic *should* do: kube-proxy's services, their frontends,
/// their endpoints with the chance each one is picked, affinity, traffic policy, masquerade and
/// the clients pinned right now.
///
/// Every rules reader (iptables-save, nftables, IPVS, xt_recent) produces these same values, so
/// analyses compare "should" with "did" without caring which datapath the node runs.

/// Which kube-proxy datapath (or state file) a rule fact came from.
public enum DatapathKind: String, Hashable, Sendable, CaseIterable {
  case iptables
  case nft
  case ipvs
  case xtRecent = "xt-recent"
}

/// How a frontend is reached.
public enum FrontendKind: String, Hashable, Sendable, CaseIterable {
  case clusterIP
  case nodePort
  case externalIP
  case loadBalancer
  /// An IPVS firewall-mark service (`-f MARK`).
  case firewallMark
  case unknown
}

/// One address:port (or node port on every local address) that leads to a service.
public struct ServiceFrontend: Hashable, Sendable, Comparable, CustomStringConvertible {
  /// `nil` for a NodePort, which matches every local address (`--dst-type LOCAL`).
  public var address: IPAddress?
  public var port: UInt16
  public var kind: FrontendKind
  /// The IPVS firewall mark, for `kind == .firewallMark`.
  public var firewallMark: UInt32?

  public init(address: IPAddress?, port: UInt16, kind: FrontendKind, firewallMark: UInt32? = nil) {
    self.address = address
    self.port = port
    self.kind = kind
    self.firewallMark = firewallMark
  }

  /// `IP:port`, `[v6]:port`, `*:port` for a NodePort, `fwmark:N` for an IPVS mark service.
  public var description: String {
    if let firewallMark { return "fwmark:\(firewallMark)" }
    guard let address else { return "*:\(port)" }
    return Endpoint(address, port).description
  }

  /// The frontend as an endpoint, when it has an address.
  public var endpoint: Endpoint? { address.map { Endpoint($0, port) } }

  public static func < (lhs: Self, rhs: Self) -> Bool {
    switch (lhs.address, rhs.address) {
    case let (l?, r?): return l != r ? l < r : lhs.port < rhs.port
    case (nil, _?): return false
    case (_?, nil): return true
    case (nil, nil): return lhs.port != rhs.port ? lhs.port < rhs.port : lhs.kind.rawValue < rhs.kind.rawValue
    }
  }
}

/// `externalTrafficPolicy` as the rules reveal it.
public enum TrafficPolicy: String, Hashable, Sendable {
  case cluster = "Cluster"
  case local = "Local"
}

/// What the datapath does with traffic for a service that has no (local) endpoints.
public enum NoEndpointsAction: String, Hashable, Sendable {
  case drop
  case reject
}

/// Why the datapath masquerades some of a service's traffic (so backends see the node's address).
public enum MasqueradeReason: String, Hashable, Sendable, CaseIterable, Comparable {
  /// Traffic to the cluster IP from outside the cluster CIDR (`! -s CLUSTER_CIDR -j KUBE-MARK-MASQ`).
  case clusterIPFromOutsideCluster
  /// Every source to the cluster IP (`--masquerade-all`).
  case clusterIPAll
  /// NodePort, external IP or load balancer traffic under externalTrafficPolicy Cluster.
  case externalPolicyCluster
  /// A pod reaching itself through the service (hairpin: `-s ENDPOINT_IP -j KUBE-MARK-MASQ`).
  case hairpin
  /// IPVS or another datapath with masquerade on every packet to the frontend.
  case other

  public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// ClientIP affinity (iptables `-m recent`, nft affinity sets, IPVS persistence).
public struct AffinityRule: Hashable, Sendable {
  /// `ClientIP` for kube-proxy; IPVS persistence reports `ClientIP` too.
  public var mode: String
  /// How long a client stays pinned after its last connection (`--seconds`, set `timeout`,
  /// IPVS `persistent`), when the rules say.
  public var timeoutSeconds: Int?
  public var source: DatapathKind
  /// IPVS persistence netmask (`-M`), when not a host mask.
  public var netmask: String?

  public init(mode: String = "ClientIP", timeoutSeconds: Int?, source: DatapathKind, netmask: String? = nil) {
    self.mode = mode
    self.timeoutSeconds = timeoutSeconds
    self.source = source
    self.netmask = netmask
  }
}

/// A client held to one endpoint by affinity state right now.
public struct PinnedClient: Hashable, Sendable {
  public var client: IPAddress
  /// The endpoint it is pinned to, when the state names it (always for xt_recent once linked).
  public var backend: Endpoint?
  /// Seconds since the client's last connection, when the node's clock (jiffies, HZ) is known.
  public var lastSeenAgeSeconds: Double?
  /// Seconds until the pin expires (`expires` of an nft set element, IPVS template expiry).
  public var expiresInSeconds: Double?
  /// Raw `last_seen` in jiffies (xt_recent), for relative ages when HZ is unknown.
  public var lastSeenJiffies: UInt64?
  /// Connections recorded for this client (xt_recent hit count, IPVS template count).
  public var hits: Int?
  public var source: DatapathKind
  /// The state list or set it came from (`KUBE-SEP-…`, `affinity-…`), for evidence.
  public var list: String?
  public var location: SourceLocation

  public init(
    client: IPAddress, backend: Endpoint?, lastSeenAgeSeconds: Double? = nil,
    expiresInSeconds: Double? = nil, lastSeenJiffies: UInt64? = nil, hits: Int? = nil,
    source: DatapathKind, list: String? = nil, location: SourceLocation
  ) {
    self.client = client
    self.backend = backend
    self.lastSeenAgeSeconds = lastSeenAgeSeconds
    self.expiresInSeconds = expiresInSeconds
    self.lastSeenJiffies = lastSeenJiffies
    self.hits = hits
    self.source = source
    self.list = list
    self.location = location
  }
}

/// One endpoint of a service as the rules program it.
public struct BackendRule: Hashable, Sendable {
  public var endpoint: Endpoint
  /// Each new cluster-IP connection's chance of landing here (the probability cascade, numgen
  /// map or IPVS weights); `nil` when the scheduler makes it meaningless (lc, sh, …).
  public var expectedShare: Double?
  /// The same for NodePort / external / load-balancer traffic; differs under policy Local.
  public var expectedShareExternal: Double?
  /// The raw `--probability` on this endpoint's rule, if any (the last rule has none).
  public var probability: Double?
  /// IPVS weight.
  public var weight: Int?
  /// IPVS forwarding method (`Masq`, `Route`, `Tunnel`, `FullNat`).
  public var forwarding: String?
  /// Whether the endpoint is on this node, when the rules say (KUBE-SVL / local endpoint chains).
  public var isLocal: Bool?
  /// New connections counted by the datapath (nat-table DNAT rule packets, IPVS `Conns`).
  public var observedConnections: UInt64?
  public var observedPackets: UInt64?
  public var observedBytes: UInt64?
  /// IPVS `ActiveConn` / `InActConn`.
  public var activeConnections: UInt64?
  public var inactiveConnections: UInt64?
  /// The endpoint's own chain (`KUBE-SEP-…`, `endpoint-…`), for evidence and xt_recent linking.
  public var chain: String?
  /// The affinity state list that pins clients to this endpoint: the `--name` of the
  /// `-m recent --set` in its chain (`/proc/net/xt_recent/NAME`), or an nft affinity set.
  public var affinityList: String?
  public var location: SourceLocation

  public init(
    endpoint: Endpoint, expectedShare: Double? = nil, expectedShareExternal: Double? = nil,
    probability: Double? = nil, weight: Int? = nil, forwarding: String? = nil, isLocal: Bool? = nil,
    observedConnections: UInt64? = nil, observedPackets: UInt64? = nil, observedBytes: UInt64? = nil,
    activeConnections: UInt64? = nil, inactiveConnections: UInt64? = nil, chain: String? = nil,
    location: SourceLocation
  ) {
    self.endpoint = endpoint
    self.expectedShare = expectedShare
    self.expectedShareExternal = expectedShareExternal
    self.probability = probability
    self.weight = weight
    self.forwarding = forwarding
    self.isLocal = isLocal
    self.observedConnections = observedConnections
    self.observedPackets = observedPackets
    self.observedBytes = observedBytes
    self.activeConnections = activeConnections
    self.inactiveConnections = inactiveConnections
    self.chain = chain
    self.location = location
  }
}

/// One kube-proxy service port (`namespace/name:port/protocol`) as a datapath programs it.
public struct ServiceRule: Hashable, Sendable {
  /// `namespace/name:portName` from kube-proxy's comments; `nil` when the rules carry none.
  public var name: String?
  public var proto: TransportProtocol
  /// Sorted.
  public var frontends: [ServiceFrontend]
  /// In rule order (the order of the probability cascade or the IPVS real-server list).
  public var backends: [BackendRule]
  public var affinity: AffinityRule?
  public var externalTrafficPolicy: TrafficPolicy?
  public var masquerade: Set<MasqueradeReason>
  /// What happens to cluster-IP traffic when the service has no endpoints.
  public var noEndpoints: NoEndpointsAction?
  /// What happens to external traffic under policy Local on a node with no local endpoints.
  public var noLocalEndpoints: NoEndpointsAction?
  /// IPVS scheduler (`rr`, `wlc`, …).
  public var scheduler: String?
  /// Clients pinned by affinity state right now.
  public var pinnedClients: [PinnedClient]
  /// Where `observedConnections` of the backends comes from (`iptables nat DNAT packet
  /// counters`, `ipvsadm --stats Conns`), when any backend has one.
  public var observedCounterSource: String?
  public var source: DatapathKind
  /// The service chain or virtual-service name (`KUBE-SVC-…`, `service-…`, `TCP 10.0.0.1:80`).
  public var chain: String?
  public var location: SourceLocation

  public init(
    name: String?, proto: TransportProtocol, frontends: [ServiceFrontend] = [],
    backends: [BackendRule] = [], affinity: AffinityRule? = nil,
    externalTrafficPolicy: TrafficPolicy? = nil, masquerade: Set<MasqueradeReason> = [],
    noEndpoints: NoEndpointsAction? = nil, noLocalEndpoints: NoEndpointsAction? = nil,
    scheduler: String? = nil, pinnedClients: [PinnedClient] = [],
    observedCounterSource: String? = nil, source: DatapathKind, chain: String? = nil,
    location: SourceLocation
  ) {
    self.name = name
    self.proto = proto
    self.frontends = frontends
    self.backends = backends
    self.affinity = affinity
    self.externalTrafficPolicy = externalTrafficPolicy
    self.masquerade = masquerade
    self.noEndpoints = noEndpoints
    self.noLocalEndpoints = noLocalEndpoints
    self.scheduler = scheduler
    self.pinnedClients = pinnedClients
    self.observedCounterSource = observedCounterSource
    self.source = source
    self.chain = chain
    self.location = location
  }
}

/// Everything the rule inputs of one run describe.
public struct RuleSet: Sendable {
  /// Sorted by name (unnamed last), then first frontend.
  public var services: [ServiceRule]
  /// Pinned clients whose list could not be linked to a service (no matching rules given).
  public var unlinkedPins: [PinnedClient]
  /// One per input read.
  public var inputs: [InputSummary]

  public init(services: [ServiceRule] = [], unlinkedPins: [PinnedClient] = [], inputs: [InputSummary] = []) {
    self.services = services
    self.unlinkedPins = unlinkedPins
    self.inputs = inputs
  }
}
