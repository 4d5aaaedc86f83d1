import LBCore

/// Names the cluster's API objects give to addresses (`kubectl get pods,services,endpointslices
/// -A -o json`), for labelling backends, services and nodes when the rules carry no comments.
public struct ClusterNames: Sendable {
  /// Pod IP → `namespace/name`.
  public var pods: [IPAddress: String] = [:]
  /// Pod IP → the node it runs on.
  public var podNodes: [IPAddress: String] = [:]
  /// ClusterIP:port → `namespace/name:portName` (the port number when the port is unnamed).
  public var services: [Endpoint: String] = [:]
  /// NodePort → the same service name.
  public var nodePorts: [UInt16: String] = [:]
  /// A node's address (a Pod's `hostIP`) → node name.
  public var nodes: [IPAddress: String] = [:]

  public init() {}

  public var isEmpty: Bool { pods.isEmpty && services.isEmpty && nodes.isEmpty }
}

/// One source of observed connections (a conntrack table, an event log, a packet capture) as
/// the `ConnectionAnalyzer` summed it.
public struct ObservedSource: Sendable {
  /// `conntrack`, `conntrack-events` or `capture`.
  public var name: String
  /// The input paths it was read from, for evidence.
  public var paths: [String]
  public var result: AnalysisResult
  /// A capture that saw both legs of the NAT (client → frontend and → backend).
  public var holdsBothLegs: Bool

  public init(name: String, paths: [String], result: AnalysisResult, holdsBothLegs: Bool = false) {
    self.name = name
    self.paths = paths
    self.result = result
    self.holdsBothLegs = holdsBothLegs
  }
}

/// What one source counted for one service.
public struct SourceDistribution: Sendable {
  public var source: String
  public var paths: [String]
  /// Sorted by backend.
  public var connections: [(backend: Endpoint, connections: Int)]
  public var total: Int
}

/// Every source's view of one service, and which one the report trusts.
public struct ServiceSources: Sendable {
  public var sources: [SourceDistribution] = []
  public var trusted: String?
  public var trustReason: String = ""
  /// The same counts judged against an equal split, when the rules' shares are not equal.
  public var equalSplit: Distribution?
  /// Backend → the node its Pod runs on (from `--k8s`).
  public var backendNodes: [Endpoint: String] = [:]
  /// The rules' frontends, including NodePorts (`*:port`), as text.
  public var ruleFrontends: [String] = []
  public var pinnedClients: [PinnedClient] = []
}

/// The report of `lbscope report`: the joined analysis and, per service (same index), the
/// sources behind it.
public struct IncidentResult: Sendable {
  public var analysis: AnalysisResult
  public var serviceSources: [ServiceSources]
}

/// Joins what the sources observed with what the rules say, per service, and diagnoses cause
/// before symptom. The theory is in `README.md` ("The incident report").
public struct IncidentCorrelator: Sendable {
  public let options: AnalysisOptions

  public init(options: AnalysisOptions) { self.options = options }

  struct Key: Hashable {
    var proto: TransportProtocol
    var frontend: Endpoint
  }

  /// A group of observed frontends that are one service, with the rule that programs it.
  struct Group {
    var keys: [Key] = []
    var rule: ServiceRule?
  }

  public func correlate(
    observed: [ObservedSource], rules: RuleSet?, names: ClusterNames = ClusterNames(), inputs: [InputSummary]
  ) -> IncidentResult {
    // Observed frontends, in a stable order.
    var keys: [Key] = []
    var seen: Set<Key> = []
    for source in observed {
      for s in source.result.services {
        for f in s.frontends where seen.insert(Key(proto: s.proto, frontend: f)).inserted {
          keys.append(Key(proto: s.proto, frontend: f))
        }
      }
    }
    keys.sort { ($0.frontend, $0.proto) < ($1.frontend, $1.proto) }

    // Match rules to observed frontends: exact address:port first, then NodePorts by port.
    var groups: [Group] = []
    var claimed: Set<Key> = []
    let ruleServices = (rules?.services ?? []).filter { rule in
      guard let focus = options.service else { return true }
      return rule.frontends.contains { $0.endpoint == focus }
    }
    for rule in ruleServices {
      var group = Group(rule: rule)
      for key in keys where key.proto == rule.proto && !claimed.contains(key) {
        if rule.frontends.contains(where: { $0.endpoint == key.frontend }) { group.keys.append(key) }
      }
      claimed.formUnion(group.keys)
      groups.append(group)
    }
    for g in groups.indices {
      guard let rule = groups[g].rule else { continue }
      let nodePorts = Set(rule.frontends.filter { $0.address == nil }.map(\.port))
      for key in keys
      where key.proto == rule.proto && !claimed.contains(key) && nodePorts.contains(key.frontend.port) {
        groups[g].keys.append(key)
        claimed.insert(key)
      }
    }
    for key in keys where !claimed.contains(key) { groups.append(Group(keys: [key])) }

    var services: [ServiceResult] = []
    var sources: [ServiceSources] = []
    for group in groups {
      let (service, serviceSources) = join(group, observed: observed, names: names)
      services.append(service)
      sources.append(serviceSources)
    }
    let order = services.indices.sorted { ServiceResult.reportOrder(services[$0], services[$1]) }
    services = order.map { services[$0] }
    sources = order.map { sources[$0] }
    let rulesByLabel = Dictionary(
      groups.compactMap { g in g.rule.map { (joinedLabel(g, names: names), $0) } },
      uniquingKeysWith: { a, _ in a })

    // Translated sources: per address, the source that saw the most connections behind it, with
    // the largest host estimate any source made (only a capture has packet evidence).
    var translated: [IPAddress: TranslatedSourceResult] = [:]
    for source in observed {
      for t in source.result.translatedSources {
        guard var kept = translated[t.address] else {
          translated[t.address] = t
          continue
        }
        let estimate = [kept.estimatedHosts, t.estimatedHosts].compactMap { $0 }.max()
        let evidence = kept.evidence.count >= t.evidence.count ? kept.evidence : t.evidence
        if kept.connections < t.connections { kept = t }
        kept.estimatedHosts = estimate
        kept.evidence = evidence
        translated[t.address] = kept
      }
    }
    let primary = observed.max { $0.result.connections < $1.result.connections }
    var analysis = AnalysisResult(
      inputs: inputs, services: services,
      translatedSources: translated.values.sorted { $0.address < $1.address }, findings: [],
      connections: primary?.result.connections ?? 0,
      connectionsWithoutDNAT: primary?.result.connectionsWithoutDNAT ?? 0,
      servicesFilteredOut: observed.map(\.result.servicesFilteredOut).max() ?? 0)
    analysis.findings = diagnose(
      analysis, sources: sources, rules: rulesByLabel, rulesInputs: rules?.inputs ?? [])
    // Hosts hidden behind addresses that arrive at this node come from packet evidence, which
    // only a capture's own analysis has.
    for source in observed {
      for f in source.result.findings
      where f.code == "sources-collapsed-by-snat" && f.summary.contains("arriving at this node")
        && !analysis.findings.contains(where: { $0.summary == f.summary })
      {
        analysis.findings.append(f)
      }
    }
    analysis.findings.sort(by: Finding.reportOrder)
    return IncidentResult(analysis: analysis, serviceSources: sources)
  }

  func joinedLabel(_ group: Group, names: ClusterNames) -> String {
    let name =
      group.rule?.name ?? group.keys.lazy.compactMap { names.services[$0.frontend] }.first
      ?? group.rule?.frontends.lazy.compactMap { $0.endpoint.flatMap { names.services[$0] } }.first
    if let name { return name }
    let proto = group.rule?.proto ?? group.keys.first?.proto ?? .tcp
    let first = group.keys.first?.frontend ?? group.rule?.frontends.compactMap(\.endpoint).first
    return first.map { "\(proto)/\($0)" } ?? "?"
  }

  /// One service: every source's counts, the trusted one as the base, the rules' expectations.
  func join(_ group: Group, observed: [ObservedSource], names: ClusterNames) -> (
    ServiceResult, ServiceSources
  ) {
    var info = ServiceSources()
    var views: [(source: ObservedSource, service: ServiceResult, parts: [ServiceResult])] = []
    for source in observed {
      let parts = source.result.services.filter { s in
        s.frontends.contains { group.keys.contains(Key(proto: s.proto, frontend: $0)) }
      }
      guard let merged = Self.merge(parts) else { continue }
      views.append((source, merged, parts))
      info.sources.append(
        SourceDistribution(
          source: source.name, paths: source.paths,
          connections: merged.backends.map { ($0.address, $0.connections) }, total: merged.connections))
    }
    let rule = group.rule
    if let rule, let counterSource = rule.observedCounterSource,
      rule.backends.contains(where: { $0.observedConnections != nil })
    {
      let counted = rule.backends.sorted { $0.endpoint < $1.endpoint }.map {
        (backend: $0.endpoint, connections: Int(clamping: $0.observedConnections ?? 0))
      }
      info.sources.append(
        SourceDistribution(
          source: counterSource, paths: [], connections: counted,
          total: counted.reduce(0) { $0 + $1.connections }))
    }

    // Trust: every source can only miss connections (conntrack forgets entries once TIME_WAIT's
    // 120 s pass or a port is reused; a capture misses what started before it, dropped packets
    // and legs it could not join), so the larger count is the better lower bound. On a tie the
    // capture wins when it holds both legs: it has handshake times and requests too.
    let best = views.max { lhs, rhs in
      if lhs.service.connections != rhs.service.connections {
        return lhs.service.connections < rhs.service.connections
      }
      return !lhs.source.holdsBothLegs && rhs.source.holdsBothLegs
    }
    var service: ServiceResult
    if let best {
      service = best.service
      info.trusted = best.source.name
      let others = views.filter { $0.source.name != best.source.name }
      if others.isEmpty {
        info.trustReason = "the only source that observed connections of this service"
      } else if others.allSatisfy({ $0.service.connections == best.service.connections }) {
        info.trustReason =
          best.source.holdsBothLegs
          ? "all sources agree on \(best.service.connections) connections; the capture holds both NAT legs, so it also gives handshake times"
          : "all sources agree on \(best.service.connections) connections"
      } else {
        let list = others.map { "\($0.source.name) \($0.service.connections)" }.joined(separator: ", ")
        // A refused connection's conntrack entry is destroyed at once: a table snapshot lacks
        // the failures a capture (or conntrack -E) holds.
        let failed = best.service.failedConnections
        let refusedGap =
          !best.source.name.hasPrefix("conntrack") && failed > 0
          && others.allSatisfy { $0.service.connections >= best.service.connections - failed }
        let why =
          best.source.name.hasPrefix("conntrack")
          ? "the capture missed connections (started late, dropped packets, or legs it could not join)"
          : refusedGap
            ? "\(best.source.name) holds \(failed) failed connections, and conntrack destroys a refused connection's entry at once (only `conntrack -E` events record it)"
            : "conntrack forgot connections (TIME_WAIT entries expire after 120 s; a reused port reopens an entry)"
        info.trustReason =
          "\(best.source.name) counts \(best.service.connections) connections against \(list); every source can only miss connections, so the largest count is trusted: \(why)"
      }
      // Latency and requests come from a capture even when another source is trusted.
      for other in others where other.source.holdsBothLegs {
        for b in service.backends.indices {
          if let seen = other.service.backends.first(where: { $0.address == service.backends[b].address }) {
            if service.backends[b].handshakeRTT == nil {
              service.backends[b].handshakeRTT = seen.handshakeRTT
            }
            if service.backends[b].httpRequests == nil {
              service.backends[b].httpRequests = seen.httpRequests
            }
          }
        }
      }
    } else {
      service = ServiceResult(
        name: nil, frontends: [], proto: rule?.proto ?? .tcp, affinity: nil, externalTrafficPolicy: nil,
        backends: [], clients: [], distribution: Distribution(), connections: 0, failedConnections: 0,
        sourceTranslatedConnections: 0)
      if let counter = info.sources.first {
        info.trusted = counter.source
        info.trustReason =
          "no conntrack table or capture observed this service; the datapath's own counters are all there is"
        service.connections = counter.total
        for b in rule?.backends ?? [] {
          service.backends.append(
            BackendResult(
              address: b.endpoint, pod: nil, expectedShare: nil, expectedShareExternal: nil,
              connections: Int(clamping: b.observedConnections ?? 0), observedShare: nil, shareInterval: nil,
              failedConnections: nil, packets: b.observedPackets, bytes: b.observedBytes, pinnedClients: nil))
        }
      } else {
        info.trustReason = "nothing observed this service: only the rules describe it"
      }
    }

    // The rules: name, frontends, backends that got nothing, expected shares, affinity, pins.
    // Traffic to NodePort / external frontends follows the external shares (under
    // externalTrafficPolicy Local, only this node's endpoints), traffic to the cluster IP the
    // cluster-wide ones: the trusted source's connections are split by where they arrived.
    if let rule, let best {
      var traffic = FrontendTraffic(clusterIP: 0, external: 0)
      for part in best.parts {
        let external =
          !part.frontends.isEmpty && part.frontends.allSatisfy { Self.isExternal($0, of: rule) }
        if external { traffic.external += part.connections } else { traffic.clusterIP += part.connections }
      }
      service.frontendTraffic = traffic
    }
    if let rule {
      service.name = rule.name ?? service.name
      for f in rule.frontends {
        if let e = f.endpoint, !service.frontends.contains(e) { service.frontends.append(e) }
      }
      info.ruleFrontends = rule.frontends.map(\.description)
      service.affinity = rule.affinity.map {
        Affinity(mode: $0.mode, timeoutSeconds: $0.timeoutSeconds, source: $0.source.rawValue)
      }
      service.externalTrafficPolicy = rule.externalTrafficPolicy?.rawValue
      info.pinnedClients = rule.pinnedClients
      for b in rule.backends where !service.backends.contains(where: { $0.address == b.endpoint }) {
        service.backends.append(
          BackendResult(
            address: b.endpoint, pod: nil, expectedShare: nil, expectedShareExternal: nil, connections: 0,
            observedShare: nil, shareInterval: nil, failedConnections: service.backends.isEmpty ? nil : 0,
            packets: nil, bytes: nil, pinnedClients: nil))
      }
      service.backends.sort { $0.address < $1.address }
      for i in service.backends.indices {
        let address = service.backends[i].address
        guard let b = rule.backends.first(where: { $0.endpoint == address }) else {
          service.backends[i].expectedShare = 0
          continue
        }
        service.backends[i].expectedShare = b.expectedShare
        service.backends[i].expectedShareExternal = b.expectedShareExternal
        if rule.affinity != nil {
          service.backends[i].pinnedClients = rule.pinnedClients.filter { $0.backend == address }.count
        }
      }
    }
    if service.name == nil {
      service.name = service.frontends.lazy.compactMap { names.services[$0] }.first
    }
    for i in service.backends.indices {
      let ip = service.backends[i].address.address
      if service.backends[i].pod == nil { service.backends[i].pod = names.pods[ip] }
      if let node = names.podNodes[ip] { info.backendNodes[service.backends[i].address] = node }
    }

    // Shares, intervals, stickiness and the verdict against what the rules expect.
    let total = service.backends.reduce(0) { $0 + $1.connections }
    service.connections = max(service.connections, total)
    for i in service.backends.indices {
      let c = service.backends[i].connections
      service.backends[i].observedShare = total > 0 ? Double(c) / Double(total) : nil
      service.backends[i].shareInterval = Statistics.wilsonInterval(successes: c, trials: total)
    }
    // Each backend's expected count is n_clusterIP·p_clusterIP + n_external·p_external, so the
    // test compares with the connection-weighted mix of the two shares.
    let mix = service.frontendTraffic ?? FrontendTraffic(clusterIP: 1, external: 0)
    let ruleShares = service.backends.map { b -> Double? in
      guard let cluster = b.expectedShare else { return nil }
      let external = b.expectedShareExternal ?? cluster
      let n = mix.clusterIP + mix.external
      return n > 0 ? (Double(mix.clusterIP) * cluster + Double(mix.external) * external) / Double(n) : cluster
    }
    let hasRuleShares =
      rule != nil && ruleShares.allSatisfy { $0 != nil } && ruleShares.contains { ($0 ?? 0) > 0 }
    if hasRuleShares {
      for i in service.backends.indices { service.backends[i].expectedShareForTraffic = ruleShares[i] }
    }
    let sharesDiffer = service.backends.contains { b in
      b.expectedShareExternal.map { abs($0 - (b.expectedShare ?? 0)) > 1e-9 } ?? false
    }
    let forTraffic: String
    switch (mix.clusterIP, mix.external) {
    case (_, 0): forTraffic = ""
    case (0, _): forTraffic = " for NodePort/external traffic"
    case (let c, let e):
      forTraffic =
        sharesDiffer ? " for the observed mix of \(c) cluster-IP and \(e) NodePort/external connections" : ""
    }
    let k = service.backends.count
    let equal = [Double](repeating: k > 0 ? 1 / Double(k) : 0, count: k)
    let expected = hasRuleShares ? ruleShares.map { $0 ?? 0 } : equal
    let judge = DistributionJudge(options: options)
    let counts = service.backends.map(\.connections)
    service.distribution = judge.judge(
      counts: counts, expectedShares: expected,
      expectation: hasRuleShares
        ? "the rules' expected shares over \(k) endpoints\(forTraffic)"
        : "equal split over the \(k) observed backends")
    if hasRuleShares, expected.contains(where: { abs($0 - 1 / Double(k)) > 1e-6 }) {
      info.equalSplit = judge.judge(
        counts: counts, expectedShares: equal, expectation: "an equal split over the \(k) endpoints")
    }
    restick(&service, expected: expected)
    return (service, info)
  }

  /// Whether traffic to `seen` takes the rule's external path (a NodePort, LoadBalancer ingress
  /// or external IP) rather than the cluster IP's.
  static func isExternal(_ seen: Endpoint, of rule: ServiceRule) -> Bool {
    rule.frontends.contains { f in
      f.kind != .clusterIP && f.port == seen.port && (f.address == nil || f.address == seen.address)
    } && !rule.frontends.contains { $0.kind == .clusterIP && $0.endpoint == seen }
  }

  /// Stickiness again, against the expected shares and the full backend list. Only when every
  /// client is listed; otherwise the totals stay as the source computed them.
  func restick(_ service: inout ServiceResult, expected: [Double]) {
    guard service.clients.count == service.clientTotals.clients else { return }
    let analyzer = ConnectionAnalyzer(options: options)
    var totals = ClientTotals()
    for c in service.clients.indices {
      let client = service.clients[c]
      let counts = client.backends.compactMap { entry -> (index: Int32, count: Int32)? in
        guard let i = service.backends.firstIndex(where: { $0.address == entry.backend }) else { return nil }
        return (Int32(i), Int32(clamping: entry.connections))
      }
      let (sticky, p) = analyzer.stickiness(
        connections: client.connections, counts: counts, expected: expected)
      service.clients[c].sticky = sticky
      service.clients[c].stickyPValue = p
      totals.clients += 1
      totals.connections += client.connections
      if sticky == true {
        totals.stickyClients += 1
        totals.stickyConnections += client.connections
      }
    }
    service.clientTotals = totals
  }

  /// Several frontends of one service seen by one source, summed into one result.
  static func merge(_ parts: [ServiceResult]) -> ServiceResult? {
    guard var out = parts.first else { return nil }
    for part in parts.dropFirst() {
      out.frontends += part.frontends.filter { !out.frontends.contains($0) }
      out.connections += part.connections
      out.failedConnections += part.failedConnections
      out.sourceTranslatedConnections += part.sourceTranslatedConnections
      out.droppedClientConnections += part.droppedClientConnections
      for b in part.backends {
        if let i = out.backends.firstIndex(where: { $0.address == b.address }) {
          out.backends[i].connections += b.connections
          out.backends[i].failedConnections = sum(out.backends[i].failedConnections, b.failedConnections)
          out.backends[i].packets = sum(out.backends[i].packets, b.packets)
          out.backends[i].bytes = sum(out.backends[i].bytes, b.bytes)
          out.backends[i].httpRequests = sum(out.backends[i].httpRequests, b.httpRequests)
          if out.backends[i].handshakeRTT == nil { out.backends[i].handshakeRTT = b.handshakeRTT }
        } else {
          out.backends.append(b)
        }
      }
      for c in part.clients {
        if let i = out.clients.firstIndex(where: { $0.address == c.address }) {
          out.clients[i].connections += c.connections
          var byBackend = Dictionary(
            out.clients[i].backends.map { ($0.backend, $0.connections) }, uniquingKeysWith: +)
          for entry in c.backends { byBackend[entry.backend, default: 0] += entry.connections }
          out.clients[i].backends = byBackend.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        } else {
          out.clients.append(c)
          out.clientTotals.clients += 1
        }
      }
      out.clientTotals.connections += part.clientTotals.connections
    }
    out.backends.sort { $0.address < $1.address }
    out.clients.sort {
      $0.connections != $1.connections ? $0.connections > $1.connections : $0.address < $1.address
    }
    return out
  }

  static func sum<T: BinaryInteger>(_ a: T?, _ b: T?) -> T? {
    switch (a, b) {
    case (nil, nil): nil
    default: (a ?? 0) + (b ?? 0)
    }
  }
}
