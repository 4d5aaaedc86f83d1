import LBCore

// Public builders for the result values, so that readers outside this module (the JSON report
// reader of `lbscope merge`) can make them. (Swift's memberwise initializers are internal, and a
// public one with the same labels cannot be declared beside them, hence `reported(…)`.)

extension BackendResult {
  public init(
    address: Endpoint, pod: String? = nil, expectedShare: Double? = nil, expectedShareExternal: Double? = nil,
    connections: Int, failedConnections: Int? = nil, packets: UInt64? = nil, bytes: UInt64? = nil,
    pinnedClients: Int? = nil, total: Int
  ) {
    self.init(
      address: address, pod: pod, expectedShare: expectedShare, expectedShareExternal: expectedShareExternal,
      connections: connections, observedShare: total > 0 ? Double(connections) / Double(total) : nil,
      shareInterval: Statistics.wilsonInterval(successes: connections, trials: total),
      failedConnections: failedConnections, packets: packets, bytes: bytes, pinnedClients: pinnedClients)
  }
}

extension ClientResult {
  public static func reported(
    address: IPAddress, connections: Int, backends: [(backend: Endpoint, connections: Int)], sticky: Bool?,
    stickyPValue: Double?
  ) -> ClientResult {
    ClientResult(
      address: address, connections: connections, backends: backends, sticky: sticky,
      stickyPValue: stickyPValue)
  }
}

extension Distribution {
  /// A distribution as a report states it; `verdict` and the statistics as given.
  public init(
    total: Int, backendCount: Int, maxMinRatio: Double?, maxMeanRatio: Double?,
    coefficientOfVariation: Double,
    gini: Double, chiSquare: Double?, degreesOfFreedom: Int?, pValue: Double?, effectSize: Double?,
    imbalanced: Bool, judged: Bool, verdict: String, expectation: String, metric: String = "connections"
  ) {
    self.init()
    self.metric = metric
    self.total = total
    self.backendCount = backendCount
    self.maxMinRatio = maxMinRatio
    self.maxMeanRatio = maxMeanRatio
    self.coefficientOfVariation = coefficientOfVariation
    self.gini = gini
    self.chiSquare = chiSquare
    self.degreesOfFreedom = degreesOfFreedom
    self.pValue = pValue
    self.effectSize = effectSize
    self.imbalanced = imbalanced
    self.judged = judged
    self.verdict = verdict
    self.expectation = expectation
  }
}

extension ServiceResult {
  public static func reported(
    name: String?, frontends: [Endpoint], proto: TransportProtocol, affinity: Affinity?,
    externalTrafficPolicy: String?, backends: [BackendResult], clients: [ClientResult],
    clientTotals: ClientTotals,
    droppedClientConnections: Int, distribution: Distribution, connections: Int, failedConnections: Int,
    sourceTranslatedConnections: Int
  ) -> ServiceResult {
    ServiceResult(
      name: name, frontends: frontends, proto: proto, affinity: affinity,
      externalTrafficPolicy: externalTrafficPolicy, backends: backends, clients: clients,
      clientTotals: clientTotals, droppedClientConnections: droppedClientConnections,
      distribution: distribution, connections: connections, failedConnections: failedConnections,
      sourceTranslatedConnections: sourceTranslatedConnections)
  }

  /// The contract's order: by name (named first), then first frontend, then protocol.
  public static func reportOrder(_ lhs: ServiceResult, _ rhs: ServiceResult) -> Bool {
    switch (lhs.name, rhs.name) {
    case (let l?, let r?) where l != r: return l < r
    case (nil, _?): return false
    case (_?, nil): return true
    default:
      let l = lhs.frontends.first ?? Endpoint(.v4(IPv4Address(0)), 0)
      let r = rhs.frontends.first ?? Endpoint(.v4(IPv4Address(0)), 0)
      return (l, lhs.proto) < (r, rhs.proto)
    }
  }
}

extension TranslatedSourceResult {
  public static func reported(
    address: IPAddress, originalSourceCount: Int, originalSourceCountIsLowerBound: Bool, connections: Int,
    estimatedHosts: Int?, exampleSources: [IPAddress]
  ) -> TranslatedSourceResult {
    TranslatedSourceResult(
      address: address, originalSourceCount: originalSourceCount,
      originalSourceCountIsLowerBound: originalSourceCountIsLowerBound, connections: connections,
      estimatedHosts: estimatedHosts, exampleSources: exampleSources)
  }
}

extension AnalysisResult {
  public static func reported(
    inputs: [InputSummary], services: [ServiceResult], translatedSources: [TranslatedSourceResult],
    findings: [Finding], connections: Int, connectionsWithoutDNAT: Int, servicesFilteredOut: Int
  ) -> AnalysisResult {
    AnalysisResult(
      inputs: inputs, services: services, translatedSources: translatedSources, findings: findings,
      connections: connections, connectionsWithoutDNAT: connectionsWithoutDNAT,
      servicesFilteredOut: servicesFilteredOut)
  }
}

extension Finding {
  /// The contract's order: severity, then code, then service.
  public static func reportOrder(_ lhs: Finding, _ rhs: Finding) -> Bool {
    (lhs.severity, lhs.code, lhs.service ?? "") < (rhs.severity, rhs.code, rhs.service ?? "")
  }
}
