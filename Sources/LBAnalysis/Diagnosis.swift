import LBCore

/// Turns an analysis into findings, cause before symptom: when sticky clients explain an
/// imbalance, the finding says so instead of a bare "imbalanced".
struct Diagnosis {
  let options: AnalysisOptions

  func findings(for result: AnalysisResult) -> [Finding] {
    var findings: [Finding] = []
    for service in result.services {
      findings += serviceFindings(service)
    }
    for source in result.translatedSources where source.originalSourceCount >= options.snatCollapseMinimum {
      let more = source.originalSourceCountIsLowerBound ? "at least " : ""
      let examples = source.exampleSources.map(\.description).joined(separator: ", ")
      findings.append(
        Finding(
          code: "sources-collapsed-by-snat", severity: .warning, service: nil,
          summary:
            "\(more)\(source.originalSourceCount) source addresses reach their destinations as \(source.address) after SNAT on this node, so anything keyed on the client address (affinity, rate limits, logs) sees one client",
          evidence: [
            "\(source.connections) connections translated to \(source.address)",
            "original sources include \(examples)",
          ],
          remediation:
            "where client addresses matter, avoid the SNAT: for Service traffic set `externalTrafficPolicy: Local` (`kubectl -n NAMESPACE patch svc NAME -p '{\"spec\":{\"externalTrafficPolicy\":\"Local\"}}'`); for an egress/NAT gateway, balance on something other than the source address"
        ))
    }
    let partial = result.inputs.filter(\.partial)
    if !partial.isEmpty {
      findings.append(
        Finding(
          code: "capture-incomplete", severity: .info, service: nil,
          summary:
            "\(partial.count) input(s) were cut or damaged, so the counts in this report are lower bounds",
          evidence: partial.map {
            "\($0.path): \($0.truncated) truncated, \($0.malformed) malformed, \($0.unsupported) unsupported records"
          },
          remediation: "collect the table again in full: `conntrack -L > conntrack.txt 2>&1`"))
    }
    return findings.sorted { lhs, rhs in
      (lhs.severity.rank, lhs.code, lhs.service ?? "") < (rhs.severity.rank, rhs.code, rhs.service ?? "")
    }
  }

  func serviceFindings(_ service: ServiceResult) -> [Finding] {
    var findings: [Finding] = []
    let label = service.label
    let frontend = service.frontends.first.map { "\($0)" } ?? label
    let address = service.frontends.first.map { "\($0.address)" } ?? label
    let d = service.distribution
    let lookup = "find the Service with `kubectl get svc -A -o wide | grep -w \(address)`"

    // Failing backends come first: they are a cause of their own.
    for backend in service.backends {
      guard let failed = backend.failedConnections, backend.connections > 0 else { continue }
      let share = Double(failed) / Double(backend.connections)
      guard failed >= options.failingMinimum, share >= options.failingShare else { continue }
      findings.append(
        Finding(
          code: "backend-failing", severity: share >= 0.5 ? .critical : .warning, service: label,
          summary:
            "backend \(backend.address) of \(frontend) failed \(failed) of \(backend.connections) connections (\(NumberText.percent(share))): refused, reset or never answered",
          evidence: [
            "\(failed) connections to \(backend.address) without an answer or closed in the handshake ([UNREPLIED], SYN_SENT, CLOSE before ESTABLISHED)"
          ],
          remediation:
            "check the Pod behind \(backend.address) (`kubectl get pods -A -o wide | grep -w \(backend.address.address)`, then `kubectl describe pod` and its logs) and give it a readiness probe that fails when it cannot serve, so kube-proxy stops sending it traffic"
        ))
    }

    let stickyClientCount = service.clientTotals.stickyClients
    let stickyConnections = service.clientTotals.stickyConnections
    let topSources = service.clients.prefix(3)
    let topConnections = topSources.reduce(0) { $0 + $1.connections }
    let maxShare = service.backends.compactMap(\.observedShare).max() ?? 0
    let expectedShare = service.backends.isEmpty ? 0 : 1 / Double(service.backends.count)
    let severity: Severity = expectedShare > 0 && maxShare >= 2 * expectedShare ? .critical : .warning

    if d.imbalanced && service.connections > 0
      && Double(stickyConnections) >= 0.5 * Double(service.connections)
    {
      let busiest = service.backends.max { $0.connections < $1.connections }
      var evidence = [
        "\(stickyClientCount) of \(service.clientTotals.clients) client addresses are held to one backend (p < \(options.stickyAlpha) each) and carry \(stickyConnections) of \(service.connections) connections",
        "the \(topSources.count) busiest source addresses carry \(topConnections) connections: "
          + topSources.map { client in
            "\(client.address) → "
              + client.backends.map { "\($0.backend) ×\($0.connections)" }.joined(separator: ", ")
          }.joined(separator: "; "),
        d.verdict,
      ]
      if let busiest {
        evidence.append(
          "busiest backend \(busiest.address) has \(NumberText.percent(busiest.observedShare ?? 0)) of connections where \(NumberText.percent(expectedShare)) was expected"
        )
      }
      findings.append(
        Finding(
          code: "affinity-concentrates-traffic", severity: severity, service: label,
          summary:
            "\(frontend): \(NumberText.percent(Double(stickyConnections) / Double(service.connections))) of connections come from \(stickyClientCount) client addresses that each stick to one backend (observed ClientIP affinity), so a few busy addresses decide the load of a few backends",
          evidence: evidence,
          remediation:
            "\(lookup); if it has `sessionAffinity: ClientIP` and its clients arrive through NAT gateways, drop it (`kubectl -n NAMESPACE patch svc NAME -p '{\"spec\":{\"sessionAffinity\":\"None\"}}'`), shorten `sessionAffinityConfig.clientIP.timeoutSeconds`, or move stickiness to a cookie at the ingress"
        ))
    } else if d.imbalanced {
      findings.append(
        Finding(
          code: "imbalanced-distribution", severity: severity, service: label,
          summary:
            "\(frontend): connections are spread unevenly over \(service.backends.count) backends (max/min \(d.maxMinRatio.map { NumberText.decimal($0, places: 2) } ?? "∞")) and no sticky clients explain it",
          evidence: [d.verdict] + service.backends.map { "\($0.address): \($0.connections) connections" },
          remediation:
            "\(lookup); compare with the rules (`iptables-save -t nat | grep KUBE-SVC`, `lbscope rules`) for stale probabilities or weights, and check whether long-lived connections pin load"
        ))
    }

    if let skew = perConnectionSkew(service) { findings.append(skew) }

    if service.connections > 0
      && Double(service.sourceTranslatedConnections) >= 0.5 * Double(service.connections)
    {
      findings.append(
        Finding(
          code: "masquerade-hides-client-ip", severity: .warning, service: label,
          summary:
            "\(frontend): \(service.sourceTranslatedConnections) of \(service.connections) connections were masqueraded on this node, so backends (and any affinity) see the node's address instead of the client's",
          evidence: ["\(service.sourceTranslatedConnections) connections with a translated source"],
          remediation:
            "\(lookup); set `externalTrafficPolicy: Local` on it if client addresses matter (`kubectl -n NAMESPACE patch svc NAME -p '{\"spec\":{\"externalTrafficPolicy\":\"Local\"}}'`), with endpoints on every node that receives traffic"
        ))
    }
    return findings
  }

  /// `long-lived-connections-skew`: connections balance, but one backend carries far more (or
  /// fewer) bytes or HTTP requests per connection than the service's mean: keep-alive, HTTP/2
  /// or gRPC connections carry the load, and balancing connections does not balance it.
  ///
  /// Work is compared per *served* connection: a refused or unanswered connection carries no
  /// work by nature (that is `backend-failing`), so failed connections are left out of the
  /// mean and a backend that served none is left out of the comparison.
  func perConnectionSkew(_ service: ServiceResult) -> Finding? {
    let d = service.distribution
    guard !d.imbalanced, service.backends.count > 1, service.connections > 0 else { return nil }
    let label = service.label
    let frontend = service.frontends.first.map { "\($0)" } ?? label
    let served = service.backends.map { max(0, $0.connections - ($0.failedConnections ?? 0)) }
    let serving = service.backends.indices.filter { served[$0] > 0 }
    let servedTotal = serving.reduce(0) { $0 + served[$1] }
    guard serving.count > 1 else { return nil }
    // (how far from the mean, either way; what it says; the heavy backend and metric when above)
    var skews: [(distance: Double, text: String, heavy: String?)] = []
    for (metric, values) in [
      ("bytes", service.backends.map { $0.bytes.map(Double.init) }),
      ("HTTP requests", service.backends.map { $0.httpRequests.map(Double.init) }),
    ] {
      let known = serving.compactMap { i in values[i].map { (service.backends[i], served[i], $0) } }
      guard known.count == serving.count else { continue }
      let total = known.reduce(0) { $0 + $1.2 }
      guard total > 0 else { continue }
      let mean = total / Double(servedTotal)
      for (backend, servedConnections, value) in known {
        let perConnection = value / Double(servedConnections)
        let ratio = perConnection / mean
        if ratio >= options.perConnectionSkewRatio || ratio <= 1 / options.perConnectionSkewRatio {
          let shares =
            "\(NumberText.percent(backend.observedShare ?? 0)) of connections but \(NumberText.percent(value / total)) of \(metric)"
          skews.append(
            (
              max(ratio, 1 / max(ratio, .leastNonzeroMagnitude)),
              "\(backend.address): \(shares) (\(NumberText.decimal(ratio, places: 2))× the mean per connection)",
              ratio > 1 ? "\(backend.address) has \(shares)" : nil
            ))
        }
      }
    }
    guard !skews.isEmpty else { return nil }
    // Backends doing more than their share first, the strongest skew first (a report's "why"
    // line), ties in the order found.
    let ordered = skews.enumerated().sorted { l, r in
      (l.element.heavy == nil ? 1 : 0, -l.element.distance, l.offset)
        < (r.element.heavy == nil ? 1 : 0, -r.element.distance, r.offset)
    }.map(\.element)
    let heaviest = ordered.first { $0.heavy != nil }?.heavy
    return Finding(
      code: "long-lived-connections-skew", severity: .warning, service: label,
      summary:
        "\(frontend): connections are balanced over \(service.backends.count) backends but the work is not: "
        + (heaviest.map { "\($0) (a few long-lived connections carry much of the load)" }
          ?? "some connections carry far more bytes or requests than others"),
      evidence: ordered.map(\.text) + [d.verdict],
      remediation:
        "balance requests, not connections: cap connection lifetime or requests per connection in the clients or server (for example HTTP keep-alive limits, gRPC `MAX_CONNECTION_AGE`), or put an L7 proxy (service mesh, ingress) in front of the backends"
    )
  }
}
