import LBCore

/// One node's report, as `lbscope merge` reads it back.
public struct NodeReport: Sendable {
  /// The node's name: the report's own `node` field, else its file name without `.json`.
  public var node: String
  /// The report file.
  public var path: String
  public var result: AnalysisResult

  public init(node: String, path: String, result: AnalysisResult) {
    self.node = node
    self.path = path
    self.result = result
  }
}

/// One node's part of the cluster-wide report.
public struct NodeSummary: Sendable {
  public var node: String
  public var path: String
  /// Service connections in the node's report.
  public var connections: Int
  /// Its share of all nodes' Service connections.
  public var share: Double?
  public var services: Int
}

/// One service as one node saw it.
public struct ServiceNodeShare: Sendable {
  public var node: String
  public var connections: Int
  /// Its share of the service's connections over all nodes.
  public var share: Double?
  public var failedConnections: Int
  public var sourceTranslatedConnections: Int
  /// Connections per backend, sorted by backend address.
  public var backends: [(backend: Endpoint, connections: Int)]
  /// The node's own verdict on its distribution.
  public var imbalanced: Bool
}

/// Several nodes' reports joined into one: the same service from each node with summed counts,
/// re-judged; per-node breakdowns; and findings that only appear with all nodes together.
public struct ClusterResult: Sendable {
  /// The merged report; its services, findings and translated sources span every node.
  public var result: AnalysisResult
  /// Sorted by node.
  public var nodes: [NodeSummary]
  /// For each service of `result.services` (same index), the nodes that saw it, sorted by node.
  public var serviceNodes: [[ServiceNodeShare]]
}

/// Merges node reports (`lbscope merge`).
///
/// - Services are the same when they share a name or a frontend (a ClusterIP is the same on
///   every node; NodePort frontends differ per node, so unnamed NodePort-only services match
///   through a shared ClusterIP or not at all).
/// - Backends, clients and translated sources are summed by address. A translated address seen
///   by several nodes keeps the largest source count, marked a lower bound.
/// - Distributions are judged again over the summed counts, against the rules' shares when every
///   node states the same ones, else an equal split; clients' stickiness is judged again too.
/// - Findings: the per-service and per-source diagnosis runs again on the merged counts; a node's
///   finding it does not make again (rules findings, or a cause only one node shows) is carried
///   over with its nodes named, and a carried affinity finding replaces a bare cluster-wide
///   "imbalanced" for its service; `node-traffic-skew` flags one node taking most of a service's
///   connections.
public struct ClusterMerger: Sendable {
  public let options: AnalysisOptions
  /// A node is skewed when it takes at least this share of a service's connections, and at least
  /// `skewOverEven` times an even share, with a significant and practical imbalance.
  public var skewShare = 0.5
  public var skewOverEven = 1.5

  public init(options: AnalysisOptions) { self.options = options }

  public func merge(_ reports: [NodeReport]) -> ClusterResult {
    let reports = reports.sorted { $0.node < $1.node }

    // Group services: union-find over (report, service) by name and by frontend.
    var items: [(report: Int, service: Int)] = []
    for (r, report) in reports.enumerated() {
      for s in report.result.services.indices { items.append((r, s)) }
    }
    var parent = Array(items.indices)
    func find(_ x: Int) -> Int {
      var x = x
      while parent[x] != x {
        parent[x] = parent[parent[x]]
        x = parent[x]
      }
      return x
    }
    var owner: [String: Int] = [:]
    for (i, item) in items.enumerated() {
      let service = reports[item.report].result.services[item.service]
      var keys = service.frontends.map { "\(service.proto) \($0)" }
      if let name = service.name { keys.append("name \(service.proto) \(name)") }
      for key in keys {
        if let other = owner[key] { parent[find(i)] = find(other) } else { owner[key] = i }
      }
    }
    var groups: [Int: [Int]] = [:]
    for i in items.indices { groups[find(i), default: []].append(i) }

    var merged: [(ServiceResult, [ServiceNodeShare])] = []
    var labels: [String: String] = [:]  // "node\0label" → merged label
    for members in groups.values {
      let parts = members.map {
        (
          node: reports[items[$0].report].node,
          service: reports[items[$0].report].result.services[items[$0].service]
        )
      }
      let (service, shares) = mergeService(parts)
      if let focus = options.service, !service.frontends.contains(focus) { continue }
      for part in parts { labels[part.node + "\u{0}" + part.service.label] = service.label }
      merged.append((service, shares))
    }
    merged.sort { ServiceResult.reportOrder($0.0, $1.0) }

    let translated = mergeTranslated(reports)
    let inputs = reports.map(inputSummary)
    var result = AnalysisResult.reported(
      inputs: inputs, services: merged.map(\.0), translatedSources: translated, findings: [],
      connections: reports.reduce(0) { $0 + $1.result.connections },
      connectionsWithoutDNAT: reports.reduce(0) { $0 + $1.result.connectionsWithoutDNAT },
      servicesFilteredOut: reports.reduce(0) { $0 + $1.result.servicesFilteredOut })

    var findings = Diagnosis(options: options).findings(for: result)
    let derived = Set(findings.map { $0.code + "\u{0}" + ($0.service ?? "") })
    let carried = carriedFindings(reports, labels: labels).filter {
      !derived.contains($0.code + "\u{0}" + ($0.service ?? ""))
    }
    // Cause before symptom: a node's affinity finding explains the cluster-wide imbalance of
    // the same service better than a bare "imbalanced".
    let explained = Set(carried.filter { $0.code == "affinity-concentrates-traffic" }.compactMap(\.service))
    findings = findings.filter {
      !($0.code == "imbalanced-distribution" && explained.contains($0.service ?? ""))
    }
    findings += carried.map { finding in
      guard finding.code == "affinity-concentrates-traffic",
        let service = result.services.first(where: { $0.label == finding.service })
      else { return finding }
      var finding = finding
      finding.evidence.append("over all nodes, \(service.distribution.verdict)")
      return finding
    }
    findings += skewFindings(result.services, shares: merged.map(\.1), reports: reports)
    result.findings = findings.sorted(by: Finding.reportOrder)

    let serviceConnections = reports.map { $0.result.services.reduce(0) { $0 + $1.connections } }
    let all = serviceConnections.reduce(0, +)
    let nodes = reports.enumerated().map { r, report in
      NodeSummary(
        node: report.node, path: report.path, connections: serviceConnections[r],
        share: all > 0 ? Double(serviceConnections[r]) / Double(all) : nil,
        services: report.result.services.count)
    }
    return ClusterResult(result: result, nodes: nodes, serviceNodes: merged.map(\.1))
  }

  // MARK: - Services

  func mergeService(_ parts: [(node: String, service: ServiceResult)]) -> (ServiceResult, [ServiceNodeShare])
  {
    let first = parts[0].service
    let name = parts.compactMap(\.service.name).min()
    let frontends = Set(parts.flatMap(\.service.frontends)).sorted()
    let total = parts.reduce(0) { $0 + $1.service.connections }

    // Backends by address.
    var order: [Endpoint] = []
    var byAddress: [Endpoint: [BackendResult]] = [:]
    for part in parts {
      for backend in part.service.backends {
        if byAddress[backend.address] == nil { order.append(backend.address) }
        byAddress[backend.address, default: []].append(backend)
      }
    }
    order.sort()
    func agreed(_ values: [Double?]) -> Double? {
      let known = values.compactMap { $0 }
      guard known.count == values.count, let v = known.first, known.allSatisfy({ abs($0 - v) < 1e-9 }) else {
        return nil
      }
      return v
    }
    func sum<T: BinaryInteger>(_ values: [T?]) -> T? {
      let known = values.compactMap { $0 }
      return known.isEmpty ? nil : known.reduce(0, +)
    }
    let backends = order.map { address -> BackendResult in
      let list = byAddress[address] ?? []
      // A backend a node did not see at all has no expectation from that node: count it unknown.
      let missing = parts.count - list.count
      return BackendResult(
        address: address, pod: list.compactMap(\.pod).min(),
        expectedShare: agreed(list.map(\.expectedShare) + Array(repeating: nil, count: missing)),
        expectedShareExternal: agreed(list.map(\.expectedShareExternal)),
        connections: list.reduce(0) { $0 + $1.connections },
        failedConnections: sum(list.map(\.failedConnections)),
        packets: sum(list.map(\.packets)), bytes: sum(list.map(\.bytes)),
        pinnedClients: sum(list.map(\.pinnedClients)),
        total: total)
    }

    let expectedShares: [Double]
    let expectation: String
    let stated = backends.compactMap(\.expectedShare)
    if stated.count == backends.count, stated.reduce(0, +) > 0 {
      let sum = stated.reduce(0, +)
      expectedShares = stated.map { $0 / sum }
      expectation = "the rules' selection chances, the same on every node"
    } else {
      expectedShares = Array(
        repeating: backends.isEmpty ? 0 : 1 / Double(backends.count), count: backends.count)
      expectation = "equal split over the \(backends.count) backends observed on \(parts.count) node(s)"
    }
    let distribution = DistributionJudge(options: options).judge(
      counts: backends.map(\.connections), expectedShares: expectedShares, expectation: expectation)

    let (clients, totals) = mergeClients(parts.map(\.service), backends: order, expected: expectedShares)

    var shares = parts.map { part in
      ServiceNodeShare(
        node: part.node, connections: part.service.connections,
        share: total > 0 ? Double(part.service.connections) / Double(total) : nil,
        failedConnections: part.service.failedConnections,
        sourceTranslatedConnections: part.service.sourceTranslatedConnections,
        backends: part.service.backends.map { (backend: $0.address, connections: $0.connections) },
        imbalanced: part.service.distribution.imbalanced)
    }
    // One node may report a service twice under two frontends that merged here: add them up.
    var combined: [String: ServiceNodeShare] = [:]
    for share in shares {
      guard var known = combined[share.node] else {
        combined[share.node] = share
        continue
      }
      known.connections += share.connections
      known.share = total > 0 ? Double(known.connections) / Double(total) : nil
      known.failedConnections += share.failedConnections
      known.sourceTranslatedConnections += share.sourceTranslatedConnections
      var counts: [Endpoint: Int] = [:]
      for (b, n) in known.backends + share.backends { counts[b, default: 0] += n }
      known.backends = counts.sorted { $0.key < $1.key }.map { (backend: $0.key, connections: $0.value) }
      known.imbalanced = known.imbalanced || share.imbalanced
      combined[share.node] = known
    }
    shares = combined.values.sorted { $0.node < $1.node }

    let service = ServiceResult.reported(
      name: name, frontends: frontends, proto: first.proto,
      affinity: parts.compactMap(\.service.affinity).first,
      externalTrafficPolicy: parts.compactMap(\.service.externalTrafficPolicy).first, backends: backends,
      clients: clients, clientTotals: totals,
      droppedClientConnections: parts.reduce(0) { $0 + $1.service.droppedClientConnections },
      distribution: distribution, connections: total,
      failedConnections: parts.reduce(0) { $0 + $1.service.failedConnections },
      sourceTranslatedConnections: parts.reduce(0) { $0 + $1.service.sourceTranslatedConnections })
    return (service, shares)
  }

  /// Listed clients summed by address and judged again; totals exact when every node listed all
  /// its clients, else the listed ones plus each node's unlisted remainder.
  func mergeClients(_ services: [ServiceResult], backends: [Endpoint], expected: [Double])
    -> ([ClientResult], ClientTotals)
  {
    var perClient: [IPAddress: [Endpoint: Int]] = [:]
    var totals = ClientTotals()
    for service in services {
      var listedConnections = 0
      var listedSticky = 0
      var listedStickyConnections = 0
      for client in service.clients {
        for (backend, n) in client.backends {
          perClient[client.address, default: [:]][backend, default: 0] += n
        }
        listedConnections += client.connections
        if client.sticky == true {
          listedSticky += 1
          listedStickyConnections += client.connections
        }
      }
      // Clients this node counted but did not list (its report's client cap).
      totals.clients += service.clientTotals.clients - service.clients.count
      totals.connections += service.clientTotals.connections - listedConnections
      totals.stickyClients += service.clientTotals.stickyClients - listedSticky
      totals.stickyConnections += service.clientTotals.stickyConnections - listedStickyConnections
    }
    let position = Dictionary(uniqueKeysWithValues: backends.enumerated().map { ($1, Int32($0)) })
    let judge = ConnectionAnalyzer(options: options)
    var clients: [ClientResult] = []
    for (address, counts) in perClient {
      let list = counts.sorted { $0.key < $1.key }
      let n = list.reduce(0) { $0 + $1.value }
      let indexed = list.compactMap { entry in
        position[entry.key].map { (index: $0, count: Int32(clamping: entry.value)) }
      }
      let (sticky, p) = judge.stickiness(connections: n, counts: indexed, expected: expected)
      clients.append(
        ClientResult.reported(
          address: address, connections: n, backends: list.map { (backend: $0.key, connections: $0.value) },
          sticky: sticky, stickyPValue: p))
      totals.clients += 1
      totals.connections += n
      if sticky == true {
        totals.stickyClients += 1
        totals.stickyConnections += n
      }
    }
    clients.sort { ($0.connections, $1.address) > ($1.connections, $0.address) }
    if options.clientsKept > 0 && clients.count > options.clientsKept {
      clients.removeLast(clients.count - options.clientsKept)
    }
    return (clients, totals)
  }

  // MARK: - Translated sources and inputs

  func mergeTranslated(_ reports: [NodeReport]) -> [TranslatedSourceResult] {
    var byAddress: [IPAddress: [TranslatedSourceResult]] = [:]
    for report in reports {
      for source in report.result.translatedSources { byAddress[source.address, default: []].append(source) }
    }
    return byAddress.sorted { $0.key < $1.key }.map { address, list in
      let examples = Set(list.flatMap(\.exampleSources)).sorted()
      let count = max(list.map(\.originalSourceCount).max() ?? 0, examples.count)
      return TranslatedSourceResult.reported(
        address: address, originalSourceCount: count,
        originalSourceCountIsLowerBound: list.count > 1
          || list.contains { $0.originalSourceCountIsLowerBound },
        connections: list.reduce(0) { $0 + $1.connections },
        estimatedHosts: list.compactMap(\.estimatedHosts).max(),
        exampleSources: Array(examples.prefix(5)))
    }
  }

  /// A node's report as one input: its inputs' issues summed, each named in a note.
  func inputSummary(_ report: NodeReport) -> InputSummary {
    var summary = InputSummary(path: report.path, kind: .report)
    summary.records = report.result.services.count
    summary.notes.append("node \(report.node): \(report.result.inputs.count) input(s)")
    for input in report.result.inputs {
      summary.truncated += input.truncated
      summary.malformed += input.malformed
      summary.unsupported += input.unsupported
      summary.partial = summary.partial || input.partial
      summary.notes.append(
        "node \(report.node): \(input.path) (\(input.kind.rawValue)): \(input.records) records, \(input.truncated) truncated, \(input.malformed) malformed, \(input.unsupported) unsupported\(input.partial ? ", partial" : "")"
      )
      for example in input.examples where summary.examples.count < InputSummary.exampleLimit {
        summary.examples.append(
          InputIssue(kind: example.kind, line: example.line, message: "\(input.path): \(example.message)"))
      }
    }
    return summary
  }

  // MARK: - Findings

  /// Node findings, one per code and service, naming the nodes that reported them (the caller
  /// drops those the merged diagnosis made again).
  func carriedFindings(_ reports: [NodeReport], labels: [String: String]) -> [Finding] {
    var grouped: [String: (finding: Finding, nodes: [String])] = [:]
    var order: [String] = []
    for report in reports {
      for finding in report.result.findings {
        let mapped = finding.service.flatMap { labels[report.node + "\u{0}" + $0] }
        // With --service, a finding about another service stays out.
        if options.service != nil && finding.service != nil && mapped == nil { continue }
        let service = mapped ?? finding.service
        let key = finding.code + "\u{0}" + (service ?? "")
        var entry =
          grouped[key] ?? (
            Finding(
              code: finding.code, severity: finding.severity, service: service, summary: finding.summary,
              evidence: [], remediation: finding.remediation), []
          )
        if grouped[key] == nil { order.append(key) }
        entry.finding.severity = min(entry.finding.severity, finding.severity)
        entry.finding.evidence += finding.evidence.map { "node \(report.node): \($0)" }
        entry.nodes.append(report.node)
        grouped[key] = entry
      }
    }
    return order.compactMap { key in
      guard var entry = grouped[key] else { return nil }
      entry.finding.summary = "on node(s) \(entry.nodes.joined(separator: ", ")): \(entry.finding.summary)"
      return entry.finding
    }
  }

  /// `node-traffic-skew`: one node takes most of a service's connections, beyond chance.
  func skewFindings(_ services: [ServiceResult], shares: [[ServiceNodeShare]], reports: [NodeReport])
    -> [Finding]
  {
    guard reports.count >= 2 else { return [] }
    var findings: [Finding] = []
    for (service, nodeShares) in zip(services, shares) {
      // Every node that could have seen the service counts, with 0 when it saw none; a node whose
      // report was narrowed by --service to another frontend could not.
      var counts: [(node: String, connections: Int)] = []
      for report in reports {
        let seen = nodeShares.first { $0.node == report.node }
        if seen == nil && report.result.servicesFilteredOut > 0 { continue }
        counts.append((report.node, seen?.connections ?? 0))
      }
      guard counts.count >= 2, service.connections > 0,
        let top = counts.max(by: { ($0.connections, $1.node) < ($1.connections, $0.node) })
      else { continue }
      let share = Double(top.connections) / Double(service.connections)
      let even = 1 / Double(counts.count)
      let d = DistributionJudge(options: options).judge(
        counts: counts.map(\.connections), expectedShares: Array(repeating: even, count: counts.count),
        expectation: "an even split over the \(counts.count) nodes")
      guard d.imbalanced, share >= skewShare, share >= skewOverEven * even else { continue }
      let frontend = service.frontends.first.map { "\($0)" } ?? service.label
      findings.append(
        Finding(
          code: "node-traffic-skew", severity: .warning, service: service.label,
          summary:
            "\(frontend): node \(top.node) receives \(NumberText.percent(share)) of the service's connections across \(counts.count) nodes, so its kube-proxy rules, conntrack table and (with ClientIP affinity) its affinity state decide most of the traffic",
          evidence: counts.map {
            "node \($0.node): \($0.connections) of \(service.connections) connections (\(NumberText.percent(Double($0.connections) / Double(service.connections))))"
          } + ["over nodes, \(d.verdict)"],
          remediation:
            "check what sends traffic to the nodes: the external load balancer's target list and health checks (with `externalTrafficPolicy: Local` only nodes with ready endpoints pass them), DNS records that name one node, or clients pinned to one NodePort address; spread them over all nodes, or give node \(top.node) the endpoints and capacity its share needs"
        ))
    }
    return findings
  }
}
