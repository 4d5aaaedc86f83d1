import LBCore

/// Aggregates connection observations into per-Service distributions, per-client backend sets
/// and translated sources. Feed it with `add(_:)` (only aggregate state grows; its bounds are in
/// `AnalysisOptions`), then call `finish(inputs:)`.
///
/// The theory (`README.md` beside this file): a connection whose translated destination differs
/// from its original destination was DNATed, so the original destination is a Service frontend
/// and the translated one the backend; one whose translated source differs from its original
/// source was SNATed, and the translated source stands for the original.
public struct ConnectionAnalyzer {
  public let options: AnalysisOptions

  struct ServiceKey: Hashable {
    var proto: TransportProtocol
    var frontend: Endpoint
  }

  struct BackendTally {
    var connections = 0
    var failed = 0
    var packets: UInt64 = 0
    var bytes: UInt64 = 0
    var hasCounters = false
    var rtt: [Int64] = []
    var rttSeen = 0
    var httpRequests = 0
    var hasHTTP = false
  }

  struct ClientTally {
    var connections = 0
    /// Indices into the service's backend list, with counts; a handful per client.
    var backends: [(index: Int32, count: Int32)] = []
  }

  final class ServiceTally {
    var backendIndex: [Endpoint: Int] = [:]
    var backendAddresses: [Endpoint] = []
    var backends: [BackendTally] = []
    var clientIndex: [IPAddress: Int] = [:]
    var clientAddresses: [IPAddress] = []
    var clients: [ClientTally] = []
    var droppedClientConnections = 0
    var connections = 0
    var failed = 0
    var sourceTranslated = 0
  }

  final class TranslatedTally {
    var sources: Set<IPAddress> = []
    var full = false
    var connections = 0
  }

  var services: [ServiceKey: ServiceTally] = [:]
  var translated: [IPAddress: TranslatedTally] = [:]
  var connections = 0
  var withoutDNAT = 0
  var filteredOut: Set<ServiceKey> = []

  public init(options: AnalysisOptions = AnalysisOptions()) {
    self.options = options
  }

  /// Adds one connection.
  public mutating func add(_ observation: ConnectionObservation) {
    connections += 1
    if observation.isSourceTranslated {
      let tally = Self.entry(in: &translated, for: observation.translated.source.address) {
        TranslatedTally()
      }
      tally.connections += 1
      if !tally.full {
        tally.sources.insert(observation.original.source.address)
        if tally.sources.count >= options.maxSourcesPerTranslatedAddress { tally.full = true }
      }
    }
    guard observation.isDestinationTranslated else {
      withoutDNAT += 1
      return
    }
    let key = ServiceKey(proto: observation.original.proto, frontend: observation.frontend)
    if let wanted = options.service, wanted != key.frontend {
      filteredOut.insert(key)
      return
    }
    let service = Self.entry(in: &services, for: key) { ServiceTally() }
    let failed = observation.failed
    service.connections += 1
    if failed { service.failed += 1 }
    if observation.isSourceTranslated { service.sourceTranslated += 1 }

    let backend = observation.backend
    let index: Int
    if let known = service.backendIndex[backend] {
      index = known
    } else {
      index = service.backends.count
      service.backendIndex[backend] = index
      service.backendAddresses.append(backend)
      service.backends.append(BackendTally())
    }
    service.backends[index].connections += 1
    if failed { service.backends[index].failed += 1 }
    let o = observation.originalCounters
    let r = observation.replyCounters
    if o.packets != nil || r.packets != nil || o.bytes != nil || r.bytes != nil {
      service.backends[index].hasCounters = true
      service.backends[index].packets &+= (o.packets ?? 0) &+ (r.packets ?? 0)
      service.backends[index].bytes &+= (o.bytes ?? 0) &+ (r.bytes ?? 0)
    }

    if let rtt = observation.handshakeRTTNanos {
      service.backends[index].addRTT(rtt, limit: options.maxRTTSamplesPerBackend)
    }
    if let requests = observation.httpRequests {
      service.backends[index].hasHTTP = true
      service.backends[index].httpRequests += requests
    }

    let client = observation.client.address
    if let known = service.clientIndex[client] {
      service.clients[known].add(Int32(index))
    } else if service.clients.count >= options.maxClientsPerService {
      service.droppedClientConnections += 1
    } else {
      service.clientIndex[client] = service.clients.count
      service.clientAddresses.append(client)
      var tally = ClientTally()
      tally.add(Int32(index))
      service.clients.append(tally)
    }
  }

  /// The tally kept under `key`, made on first use. Tallies are classes, so the caller updates
  /// them in place without a second lookup.
  static func entry<Key: Hashable, Tally: AnyObject>(
    in tallies: inout [Key: Tally], for key: Key, make: () -> Tally
  ) -> Tally {
    if let existing = tallies[key] { return existing }
    let made = make()
    tallies[key] = made
    return made
  }

  /// Finishes the analysis: distributions, stickiness, findings.
  public func finish(inputs: [InputSummary]) -> AnalysisResult {
    var results: [ServiceResult] = []
    for (key, tally) in services {
      results.append(serviceResult(key: key, tally: tally))
    }
    results.sort { lhs, rhs in
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
    var translatedResults: [TranslatedSourceResult] = []
    for (address, tally) in translated {
      let sorted = tally.sources.sorted()
      translatedResults.append(
        TranslatedSourceResult(
          address: address, originalSourceCount: tally.sources.count,
          originalSourceCountIsLowerBound: tally.full, connections: tally.connections,
          estimatedHosts: nil, exampleSources: Array(sorted.prefix(5))))
    }
    translatedResults.sort { $0.address < $1.address }

    var result = AnalysisResult(
      inputs: inputs, services: results, translatedSources: translatedResults, findings: [],
      connections: connections, connectionsWithoutDNAT: withoutDNAT,
      servicesFilteredOut: filteredOut.count)
    result.findings = Diagnosis(options: options).findings(for: result)
    return result
  }

  func serviceResult(key: ServiceKey, tally: ServiceTally) -> ServiceResult {
    let total = tally.connections
    let k = tally.backends.count
    let expected = [Double](repeating: k > 0 ? 1 / Double(k) : 0, count: k)

    var backends: [BackendResult] = []
    for (index, address) in tally.backendAddresses.enumerated() {
      let b = tally.backends[index]
      var result = BackendResult(
        address: address, pod: nil, expectedShare: nil, expectedShareExternal: nil,
        connections: b.connections,
        observedShare: total > 0 ? Double(b.connections) / Double(total) : nil,
        shareInterval: Statistics.wilsonInterval(successes: b.connections, trials: total),
        failedConnections: b.failed, packets: b.hasCounters ? b.packets : nil,
        bytes: b.hasCounters ? b.bytes : nil, pinnedClients: nil)
      result.handshakeRTT = b.percentiles
      result.httpRequests = b.hasHTTP ? b.httpRequests : nil
      backends.append(result)
    }

    var clients: [ClientResult] = []
    clients.reserveCapacity(tally.clients.count)
    for (address, client) in zip(tally.clientAddresses, tally.clients) {
      var perBackend = client.backends.map {
        (backend: tally.backendAddresses[Int($0.index)], connections: Int($0.count))
      }
      perBackend.sort { $0.backend < $1.backend }
      let (sticky, p) = stickiness(
        connections: client.connections, counts: client.backends, expected: expected)
      clients.append(
        ClientResult(
          address: address, connections: client.connections, backends: perBackend,
          sticky: sticky, stickyPValue: p))
    }
    clients.sort { ($0.connections, $1.address) > ($1.connections, $0.address) }

    // Backends sorted by address, as the contract asks; the distribution follows that order.
    let order = backends.indices.sorted { backends[$0].address < backends[$1].address }
    backends = order.map { backends[$0] }
    let distribution = DistributionJudge(options: options).judge(
      counts: backends.map { $0.connections }, expectedShares: order.map { expected[$0] },
      expectation: "equal split over the \(k) observed backends")

    return ServiceResult(
      name: nil, frontends: [key.frontend], proto: key.proto, affinity: nil,
      externalTrafficPolicy: nil, backends: backends, clients: clients,
      droppedClientConnections: tally.droppedClientConnections, distribution: distribution,
      connections: total, failedConnections: tally.failed,
      sourceTranslatedConnections: tally.sourceTranslated)
  }

  /// Whether one client is held to one backend beyond chance.
  ///
  /// With n connections and its main backend b holding m of them, the chance of a concentration
  /// at least that strong without affinity is P(X ≥ m) for X ~ Binomial(n, p_b), times the number
  /// of backends (Bonferroni: any backend could have been the main one). The client is sticky when
  /// that chance is below `stickyAlpha` and b holds at least `stickyDominance` of its connections;
  /// unknown (`nil`) when even n of n on one backend would not be significant, or with one backend.
  func stickiness(connections n: Int, counts: [(index: Int32, count: Int32)], expected: [Double])
    -> (Bool?, Double?)
  {
    let k = expected.count
    guard k > 1, n > 0, let main = counts.max(by: { $0.count < $1.count }) else { return (nil, nil) }
    let largestShare = expected.max() ?? 1
    let best = Double(k) * Statistics.binomialUpperTail(n: n, k: n, p: largestShare)
    if best >= options.stickyAlpha { return (nil, nil) }
    let m = Int(main.count)
    let p = min(1, Double(k) * Statistics.binomialUpperTail(n: n, k: m, p: expected[Int(main.index)]))
    let dominant = Double(m) >= options.stickyDominance * Double(n)
    return (p < options.stickyAlpha && dominant, p)
  }
}

extension ConnectionAnalyzer.BackendTally {
  /// Keeps an RTT sample; past `limit`, reservoir sampling (Vitter's algorithm R) with a fixed
  /// linear congruential sequence, so the same input gives the same percentiles.
  mutating func addRTT(_ nanos: Int64, limit: Int) {
    rttSeen += 1
    if rtt.count < limit {
      rtt.append(nanos)
      return
    }
    let r = UInt64(rttSeen) &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    let slot = Int((r >> 17) % UInt64(rttSeen))
    if slot < limit { rtt[slot] = nanos }
  }

  /// Nearest-rank p50, p90, p99 in milliseconds.
  var percentiles: LatencyPercentiles? {
    guard !rtt.isEmpty else { return nil }
    let sorted = rtt.sorted()
    func rank(_ q: Double) -> Double {
      let i = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
      return Double(sorted[i]) / 1e6
    }
    return LatencyPercentiles(
      p50: rank(0.5), p90: rank(0.9), p99: rank(0.99), samples: sorted.count, total: rttSeen)
  }
}

extension ConnectionAnalyzer.ClientTally {
  mutating func add(_ index: Int32) {
    connections += 1
    for i in backends.indices where backends[i].index == index {
      backends[i].count += 1
      return
    }
    backends.append((index, 1))
  }
}

/// Judges a distribution of counts against expected shares.
public struct DistributionJudge: Sendable {
  public let options: AnalysisOptions
  public init(options: AnalysisOptions) { self.options = options }

  /// `counts[i]` was observed where `expectedShares[i]` of the total was expected.
  public func judge(counts: [Int], expectedShares: [Double], expectation: String) -> Distribution {
    var d = Distribution()
    d.expectation = expectation
    let total = counts.reduce(0, +)
    d.total = total
    d.backendCount = counts.count
    guard !counts.isEmpty, total > 0 else {
      d.verdict = "no connections"
      return d
    }
    let values = counts.map(Double.init)
    d.coefficientOfVariation = Statistics.coefficientOfVariation(values)
    d.gini = Statistics.gini(values)
    if let maxCount = counts.max(), let minCount = counts.min() {
      d.maxMinRatio = minCount > 0 ? Double(maxCount) / Double(minCount) : nil
      d.maxMeanRatio = Double(maxCount) / (Double(total) / Double(counts.count))
    }
    guard counts.count > 1 else {
      d.verdict = "one backend: nothing to balance"
      return d
    }
    var chi2 = 0.0
    var minExpected = Double.infinity
    for (count, share) in zip(counts, expectedShares) where share > 0 {
      let e = share * Double(total)
      minExpected = min(minExpected, e)
      chi2 += (Double(count) - e) * (Double(count) - e) / e
    }
    let df = expectedShares.filter { $0 > 0 }.count - 1
    d.chiSquare = chi2
    d.degreesOfFreedom = df
    d.pValue = Statistics.chiSquareUpperTail(chi2, degreesOfFreedom: df)
    d.effectSize = (chi2 / Double(total)).squareRoot()
    guard minExpected >= options.minExpectedPerBackend else {
      d.verdict =
        "too few connections to judge (\(total) over \(counts.count) backends; at least \(Int(options.minExpectedPerBackend)) expected per backend are needed)"
      return d
    }
    d.judged = true
    let significant = (d.pValue ?? 1) < options.alpha
    let practical = (d.effectSize ?? 0) >= options.minEffectSize
    d.imbalanced = significant && practical
    if d.imbalanced {
      d.verdict =
        "imbalanced: \(NumberText.pValue(d.pValue ?? 0)) (α = \(NumberText.decimal(options.alpha, places: 4))) and effect size w = \(NumberText.decimal(d.effectSize ?? 0, places: 4)) (at least \(NumberText.decimal(options.minEffectSize, places: 4)))"
    } else if significant {
      d.verdict =
        "balanced in practice: the deviation is significant (\(NumberText.pValue(d.pValue ?? 0))) but small (w = \(NumberText.decimal(d.effectSize ?? 0, places: 4)) < \(NumberText.decimal(options.minEffectSize, places: 4)))"
    } else {
      d.verdict = "balanced: consistent with \(expectation) (\(NumberText.pValue(d.pValue ?? 1)))"
    }
    return d
  }
}
