import LBCore

/// How sure lbscope must be before it calls something imbalanced or sticky. Every threshold is
/// documented in `Sources/LBAnalysis/README.md` and settable from the command line.
public struct AnalysisOptions: Sendable {
  /// Significance level of the goodness-of-fit test for `imbalanced`.
  public var alpha = 0.001
  /// Smallest effect size (Cohen's w = √(χ²/N)) that counts as a practical imbalance.
  /// 0.1 is Cohen's "small" effect: a 30/20 split between two backends has w = 0.2.
  public var minEffectSize = 0.1
  /// Fewest expected connections per backend for the chi-square test to be trusted.
  public var minExpectedPerBackend = 5.0
  /// Significance level of the per-client stickiness test (after Bonferroni over backends).
  public var stickyAlpha = 0.01
  /// Share of a client's connections its main backend must hold to call it sticky.
  public var stickyDominance = 0.9
  /// A translated address standing for at least this many original sources is reported.
  public var snatCollapseMinimum = 3
  /// A backend with at least this share of failed connections (and `failingMinimum` failures)
  /// is failing.
  public var failingShare = 0.2
  public var failingMinimum = 3
  /// Only analyse this frontend, when set.
  public var service: Endpoint? = nil
  /// Clients kept per service; past it, further clients are counted together as "other".
  public var maxClientsPerService = 200_000
  /// Original sources remembered per translated address.
  public var maxSourcesPerTranslatedAddress = 100_000
  /// Rows of the client table in Markdown.
  public var topClients = 20
  /// Clients kept in each `ServiceResult.clients` (the busiest); 0 keeps all. Totals over all
  /// clients are in `ServiceResult.clientTotals` either way. Renderers list at most this many.
  public var clientsKept = 1000
  /// Handshake RTTs kept per backend for percentiles; past it a deterministic reservoir sample.
  public var maxRTTSamplesPerBackend = 100_000
  /// Bytes or requests per connection this many times the service's mean on one backend, while
  /// connections balance, make `long-lived-connections-skew`.
  public var perConnectionSkewRatio = 2.0

  public init() {}
}

/// One backend of a service with what was observed going to it.
public struct BackendResult: Sendable {
  public var address: Endpoint
  public var pod: String?
  public var expectedShare: Double?
  public var expectedShareExternal: Double?
  public var connections: Int
  public var observedShare: Double?
  /// 95% Wilson interval of `observedShare`.
  public var shareInterval: (lower: Double, upper: Double)?
  public var failedConnections: Int?
  public var packets: UInt64?
  public var bytes: UInt64?
  public var pinnedClients: Int?
  /// SYN → SYN-ACK times toward this backend, from packet traces.
  public var handshakeRTT: LatencyPercentiles? = nil
  /// Plaintext HTTP/1.x requests on its connections, from packet traces; nil when none were seen.
  public var httpRequests: Int? = nil
  /// The share this node's rules give the traffic that was observed: `expectedShare` for
  /// connections to the cluster IP and `expectedShareExternal` for NodePort/LoadBalancer/external
  /// ones, weighted by how many of each arrived (`ServiceResult.frontendTraffic`). What the
  /// goodness-of-fit test compares with; nil without rules.
  public var expectedShareForTraffic: Double? = nil
}

/// Percentiles of a latency sample, in milliseconds (nearest-rank).
public struct LatencyPercentiles: Sendable, Hashable {
  public var p50: Double
  public var p90: Double
  public var p99: Double
  /// Samples the percentiles come from (at most `AnalysisOptions.maxRTTSamplesPerBackend`,
  /// a deterministic sample of all when there were more).
  public var samples: Int
  public var total: Int
}

/// One client address of a service: where its connections went.
public struct ClientResult: Sendable {
  public var address: IPAddress
  public var connections: Int
  /// Connections per backend, sorted by backend address.
  public var backends: [(backend: Endpoint, connections: Int)]
  /// Held to one backend beyond what chance explains; `nil` when its connections are too few
  /// to tell.
  public var sticky: Bool?
  /// The chance of a concentration at least this strong without affinity (Bonferroni-corrected).
  public var stickyPValue: Double?
}

/// How evenly a service's connections spread over its backends.
public struct Distribution: Sendable {
  public var metric = "connections"
  public var total = 0
  public var backendCount = 0
  public var maxMinRatio: Double?
  public var maxMeanRatio: Double?
  public var coefficientOfVariation = 0.0
  public var gini = 0.0
  public var chiSquare: Double?
  public var degreesOfFreedom: Int?
  public var pValue: Double?
  /// How `pValue` was computed: `chi-square` (the asymptotic test), `exact` (the multinomial
  /// test, or a fit rejected outright) or `monte-carlo` (`simulations` seeded draws).
  public var pValueMethod: String?
  public var simulations: Int?
  /// Cohen's w.
  public var effectSize: Double?
  public var imbalanced = false
  /// Why the verdict is what it is, in words.
  public var verdict = ""
  /// Whether there were enough connections to judge at all.
  public var judged = false
  /// Where the expected shares came from (`equal split over observed backends`, rules, …).
  public var expectation = "equal split over the observed backends"
}

/// A Service as one frontend (or, with rules, several) and everything observed about it.
public struct ServiceResult: Sendable {
  public var name: String?
  public var frontends: [Endpoint]
  public var proto: TransportProtocol
  public var affinity: Affinity?
  public var externalTrafficPolicy: String?
  public var backends: [BackendResult]
  /// The busiest clients (connections descending, then address), at most
  /// `AnalysisOptions.clientsKept` of them.
  public var clients: [ClientResult]
  /// Counts over every client of the service, listed or not.
  public var clientTotals = ClientTotals()
  /// Connections of clients not kept because of `maxClientsPerService`. Their number is not
  /// counted: remembering which clients were dropped would need the memory the limit saves.
  public var droppedClientConnections = 0
  public var distribution: Distribution
  public var connections: Int
  public var failedConnections: Int
  /// Connections whose source was translated on this node (masquerade).
  public var sourceTranslatedConnections: Int
  /// Cookies whose values each land on one backend (plaintext HTTP in packet traces).
  public var cookieAffinity: [CookieAffinityObservation] = []
  /// The trusted source's connections by the kind of frontend they arrived on, when rules
  /// say which frontends are which; nil otherwise.
  public var frontendTraffic: FrontendTraffic? = nil

  /// The name if known, else the first frontend: how findings refer to the service.
  public var label: String { name ?? frontends.first.map { "\(proto)/\($0)" } ?? "?" }
}

/// Connections of a service by the kind of frontend they arrived on. Under
/// externalTrafficPolicy Local the two kinds have different expected shares (external traffic
/// only reaches this node's endpoints).
public struct FrontendTraffic: Sendable, Hashable {
  /// To the cluster IP (or an address the rules do not mark as external).
  public var clusterIP: Int
  /// To a NodePort, LoadBalancer ingress or external IP.
  public var external: Int
  public init(clusterIP: Int, external: Int) {
    self.clusterIP = clusterIP
    self.external = external
  }
}

/// Counts over all clients of a service, including those not listed in `clients`.
public struct ClientTotals: Sendable, Hashable {
  public var clients = 0
  public var connections = 0
  public var stickyClients = 0
  public var stickyConnections = 0
  public init() {}
}

/// Session affinity as the rules configure it.
public struct Affinity: Sendable, Hashable {
  public var mode: String
  public var timeoutSeconds: Int?
  public var source: String
  public init(mode: String, timeoutSeconds: Int?, source: String) {
    self.mode = mode
    self.timeoutSeconds = timeoutSeconds
    self.source = source
  }
}

/// An address that stands for several original sources after SNAT on the observing node.
public struct TranslatedSourceResult: Sendable {
  public var address: IPAddress
  public var originalSourceCount: Int
  /// True when `maxSourcesPerTranslatedAddress` was reached: the count is a lower bound.
  public var originalSourceCountIsLowerBound: Bool
  public var connections: Int
  public var estimatedHosts: Int?
  /// A few of the original sources, sorted, for the report.
  public var exampleSources: [IPAddress]
  /// The packet evidence behind `estimatedHosts`, one line per signal (packet traces only).
  public var evidence: [String] = []
}

public enum Severity: String, Sendable, Comparable {
  case critical, warning, info
  var rank: Int {
    switch self {
    case .critical: 0
    case .warning: 1
    case .info: 2
    }
  }
  public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rank < rhs.rank }
}

/// A diagnosis with the evidence behind it and what to do.
public struct Finding: Sendable {
  /// A stable code from the report contract (`affinity-concentrates-traffic`, …).
  public var code: String
  public var severity: Severity
  public var service: String?
  public var summary: String
  public var evidence: [String]
  public var remediation: String?

  public init(
    code: String, severity: Severity, service: String?, summary: String, evidence: [String],
    remediation: String?
  ) {
    self.code = code
    self.severity = severity
    self.service = service
    self.summary = summary
    self.evidence = evidence
    self.remediation = remediation
  }
}

/// Everything an analysis found, ready to render.
public struct AnalysisResult: Sendable {
  public var inputs: [InputSummary]
  public var services: [ServiceResult]
  public var translatedSources: [TranslatedSourceResult]
  public var findings: [Finding]
  /// Connections seen in all, and how many were not destination-translated (no Service).
  public var connections: Int
  public var connectionsWithoutDNAT: Int
  /// Services left out by `--service`.
  public var servicesFilteredOut: Int
}
