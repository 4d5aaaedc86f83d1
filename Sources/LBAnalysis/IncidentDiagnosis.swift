import LBCore

extension IncidentCorrelator {
  /// Findings for the joined report, cause before symptom:
  /// - the observed findings (`Diagnosis`), judged against the rules' shares;
  /// - the rules' own findings (`stale-probabilities`, `no-local-endpoints`, masquerade);
  /// - `affinity-concentrates-traffic` backed by the rules' ClientIP affinity and its pins, critical
  ///   when the busiest backend holds twice its expected share;
  /// - one finding per code and service, remediations with the real service name when known.
  func diagnose(
    _ analysis: AnalysisResult, sources: [ServiceSources], rules: [String: ServiceRule],
    rulesInputs: [InputSummary]
  ) -> [Finding] {
    var findings = Diagnosis(options: options).findings(for: analysis)
    for (s, service) in analysis.services.enumerated() {
      let label = service.label
      let info = sources[s]
      let evidenceSource =
        info.trusted.map { trusted in
          let paths = info.sources.first { $0.source == trusted }?.paths ?? []
          return
            "observed by \(trusted)\(paths.isEmpty ? "" : " (" + paths.joined(separator: ", ") + ")"): \(info.trustReason)"
        } ?? "no source observed connections of this service"
      guard let rule = rules[label] else {
        for f in findings.indices where findings[f].service == label {
          findings[f].evidence.append(evidenceSource)
        }
        continue
      }
      let ruleInput =
        rulesInputs.indices.contains(rule.location.input) ? rulesInputs[rule.location.input].path : "rules"
      let ruleWhere = "\(ruleInput):\(rule.location.line)\(rule.chain.map { " (\($0))" } ?? "")"
      // The rules' own findings, under the joined label.
      var ruleFindings = RulesAnalyzer.serviceFindings(rule).map { f -> Finding in
        var f = f
        f.service = label
        return f
      }
      if service.connections == 0, let d = RulesAnalyzer.distribution(rule, options: options), d.imbalanced {
        ruleFindings.append(RulesAnalyzer.imbalance(rule, d))
      }
      // Stale probabilities explain an imbalance when what was observed fits them.
      if let stale = ruleFindings.firstIndex(where: { $0.code == "stale-probabilities" }) {
        let d = service.distribution
        if d.judged, !d.imbalanced {
          let equal = info.equalSplit
          ruleFindings[stale].evidence.insert(
            "observed \(service.connections) connections fit the rules' unequal shares (\(NumberText.pValue(d.pValue ?? 1)))"
              + (equal.map {
                $0.imbalanced
                  ? " and reject an equal split (\(NumberText.pValue($0.pValue ?? 0)), w = \(NumberText.decimal($0.effectSize ?? 0, places: 2)))"
                  : ""
              } ?? ""),
            at: 0)
          ruleFindings[stale].evidence += service.backends.map {
            "\($0.address): \(NumberText.percent($0.observedShare ?? 0)) observed, \(NumberText.percent($0.expectedShare ?? 0)) by the rules"
          }
          if equal?.imbalanced == true {
            ruleFindings[stale].severity = .critical
          }
        }
        ruleFindings[stale].evidence.append(ruleWhere)
      }
      // Masquerade the rules allow and the observations show is the cause to act on.
      if service.connections > 0, 2 * service.sourceTranslatedConnections >= service.connections,
        let m = ruleFindings.firstIndex(where: { $0.code == "masquerade-hides-client-ip" })
      {
        ruleFindings[m].severity = min(ruleFindings[m].severity, .warning)
        ruleFindings[m].evidence.insert(
          "observed: \(service.sourceTranslatedConnections) of \(service.connections) connections reached the backends with the node's address as their source",
          at: 0)
      }
      findings.removeAll { f in
        f.service == label && f.code != "affinity-concentrates-traffic"
          && ruleFindings.contains { r in r.code == f.code }
      }
      findings += ruleFindings.filter { r in
        !(r.code == "affinity-concentrates-traffic"
          && findings.contains { $0.service == label && $0.code == r.code })
      }
      staleRulesExplainFailures(&findings, service: service)

      for f in findings.indices where findings[f].service == label {
        if findings[f].code == "affinity-concentrates-traffic", let affinity = rule.affinity {
          let busiest = service.backends.max { $0.connections < $1.connections }
          if let busiest, let share = busiest.observedShare, let expected = busiest.expectedShare,
            expected > 0
          {
            findings[f].severity = share >= 2 * expected ? .critical : .warning
          }
          var pinned: [String] = []
          for b in service.backends where (b.pinnedClients ?? 0) > 0 {
            let clients = info.pinnedClients.filter { $0.backend == b.address }.map(\.client.description)
            pinned.append("\(b.address) ← \(clients.joined(separator: ", "))")
          }
          findings[f].evidence.insert(
            "the rules set sessionAffinity \(affinity.mode) (timeout \(affinity.timeoutSeconds.map { "\($0) s" } ?? "unknown"), \(affinity.source.rawValue)) at \(ruleWhere): each source address is pinned to the endpoint it first reached",
            at: 0)
          if !pinned.isEmpty {
            findings[f].evidence.append("affinity state pins " + pinned.joined(separator: "; "))
          }
          findings[f].summary =
            "\(label): sessionAffinity ClientIP pins \(service.clientTotals.stickyClients) source address(es) carrying \(service.clientTotals.stickyConnections) of \(service.connections) connections to single backends, so "
            + (busiest.map {
              "\($0.address) gets \(NumberText.percent($0.observedShare ?? 0)) where \(NumberText.percent($0.expectedShare ?? 0)) was expected"
            } ?? "the load follows a few addresses")
          findings[f].remediation =
            "\(patch(label, #"{"spec":{"sessionAffinity":"None"}}"#)); or, if stickiness is needed, shorten `sessionAffinityConfig.clientIP.timeoutSeconds` or move it to a cookie at the ingress (sources behind NAT gateways share one address)"
        }
        findings[f].evidence.append(evidenceSource)
      }
    }
    // This node's own SNAT collapsed the sources of the services whose connections it
    // translated: the fix names them.
    let translating = analysis.services.filter { $0.sourceTranslatedConnections > 0 }.map(\.label)
    let namedServices = translating.filter { Self.split($0) != nil }
    if !namedServices.isEmpty, namedServices.count == translating.count {
      let patches = namedServices.map { patch($0, #"{"spec":{"externalTrafficPolicy":"Local"}}"#) }
      for f in findings.indices
      where findings[f].code == "sources-collapsed-by-snat" && findings[f].service == nil
        && findings[f].summary.contains("after SNAT on this node")
      {
        findings[f].remediation = findings[f].remediation?.replacing(
          "`kubectl -n NAMESPACE patch svc NAME -p '{\"spec\":{\"externalTrafficPolicy\":\"Local\"}}'`",
          with: patches.joined(separator: ", "))
        findings[f].evidence.append(
          "the connections SNATed on this node belong to \(namedServices.joined(separator: ", "))")
      }
    }
    // Sources collapsed by this node's own SNAT are the symptom of an observed masquerade.
    if findings.contains(where: { $0.code == "masquerade-hides-client-ip" && $0.severity <= .warning }) {
      for f in findings.indices
      where findings[f].code == "sources-collapsed-by-snat" && findings[f].summary.contains("on this node") {
        findings[f].severity = .info
        findings[f].evidence.append("a consequence of the masquerade reported as masquerade-hides-client-ip")
      }
    }
    // One finding per code and service: the most severe, with the others' evidence.
    var merged: [Finding] = []
    for f in findings {
      if let i = merged.firstIndex(where: { $0.code == f.code && $0.service == f.service }) {
        if f.severity < merged[i].severity {
          let evidence = merged[i].evidence
          merged[i] = f
          merged[i].evidence += evidence.filter { !f.evidence.contains($0) }
        } else {
          merged[i].evidence += f.evidence.filter { !merged[i].evidence.contains($0) }
        }
      } else {
        merged.append(f)
      }
    }
    for i in merged.indices {
      if let label = merged[i].service, let fix = merged[i].remediation {
        merged[i].remediation = named(fix, label: label)
      }
    }
    return merged.sorted(by: Finding.reportOrder)
  }

  /// Stale rules are the cause when a backend they still send traffic to fails: kube-proxy
  /// takes an endpoint that fails its readiness probe out of the rules when it syncs them, and
  /// probabilities it would not have written (`stale-probabilities`) say it has not synced this
  /// node. The stale finding takes the failing backend's severity (and leads the report); the
  /// `backend-failing` finding stays, one step lower, as its symptom. A failing backend without
  /// stale rules is left alone: then it is a cause of its own.
  func staleRulesExplainFailures(_ findings: inout [Finding], service: ServiceResult) {
    let label = service.label
    guard let stale = findings.firstIndex(where: { $0.service == label && $0.code == "stale-probabilities" })
    else { return }
    let failing = findings.indices.filter {
      findings[$0].service == label && findings[$0].code == "backend-failing"
    }
    guard !failing.isEmpty else { return }
    let failingBackends = service.backends.filter { b in
      guard let failed = b.failedConnections, b.connections > 0 else { return false }
      return failed >= options.failingMinimum
        && Double(failed) / Double(b.connections) >= options.failingShare
    }
    for f in failing {
      findings[stale].severity = min(findings[stale].severity, findings[f].severity)
      if findings[f].severity == .critical { findings[f].severity = .warning }
      findings[f].evidence.append(
        "the rules that still send it new connections are stale (stale-probabilities): kube-proxy takes a backend that fails its readiness probe out of the rules when it syncs them"
      )
    }
    let names = failingBackends.map { "\($0.address)" }.joined(separator: ", ")
    guard !failingBackends.isEmpty else { return }
    findings[stale].summary += ", and they still send new connections to failing backend(s) \(names)"
    findings[stale].evidence.insert(
      contentsOf: failingBackends.map { b in
        "\(b.address) failed \(b.failedConnections ?? 0) of \(b.connections) connections, yet the rules give it \(NumberText.percent(b.expectedShare ?? 0)) of new connections: rules kube-proxy keeps in sync would have dropped a backend failing its readiness probe"
      }, at: 0)
    if let fix = findings[stale].remediation {
      findings[stale].remediation =
        fix
        + "; once the rules are fresh, check that \(names) has a readiness probe that fails when it cannot serve, so it leaves them"
    }
  }

  /// `kubectl -n NS patch svc NAME -p 'PATCH'` for a `namespace/name:port` label.
  func patch(_ label: String, _ json: String) -> String {
    guard let (namespace, name) = Self.split(label) else {
      return "`kubectl -n NAMESPACE patch svc NAME -p '\(json)'` (find it with `kubectl get svc -A -o wide`)"
    }
    return "`kubectl -n \(namespace) patch svc \(name) -p '\(json)'`"
  }

  /// Puts the real namespace and name into a remediation written with placeholders.
  func named(_ fix: String, label: String) -> String {
    guard let (namespace, name) = Self.split(label) else { return fix }
    var out = fix.replacing(
      "kubectl -n NAMESPACE patch svc NAME", with: "kubectl -n \(namespace) patch svc \(name)")
    if let lookup = out.firstRange(of: "find the Service with `kubectl get svc -A -o wide | grep -w "),
      let end = out[lookup.upperBound...].firstRange(of: "`; ")
    {
      out.replaceSubrange(lookup.lowerBound..<end.upperBound, with: "")
    }
    return out
  }

  /// `("payments", "checkout")` from `payments/checkout:http`; `nil` for a frontend label.
  static func split(_ label: String) -> (String, String)? {
    guard !label.hasPrefix("tcp/"), !label.hasPrefix("udp/"), !label.hasPrefix("sctp/"),
      let slash = label.firstIndex(of: "/")
    else { return nil }
    let namespace = String(label[..<slash])
    let rest = label[label.index(after: slash)...]
    let name = String(rest.split(separator: ":", omittingEmptySubsequences: false).first ?? rest)
    guard !namespace.isEmpty, !name.isEmpty else { return nil }
    return (namespace, name)
  }
}
