import LBCore

/// What the rules of a node say, with findings: stale probabilities, services without (local)
/// endpoints, masquerade that hides client addresses, and how the datapath's own counters
/// compare with the expected shares.
public struct RulesResult: Sendable {
  public var inputs: [InputSummary]
  public var services: [ServiceRule]
  /// Per service (same index): how the observed counters spread, when there are counters.
  public var distributions: [Distribution?]
  public var unlinkedPins: [PinnedClient]
  public var findings: [Finding]
  public var trace: PacketTrace?
  /// Where xt_recent ages came from (`jiffies.txt` path, the command line), if anywhere.
  public var clockSource: String?
  public var servicesFilteredOut: Int
}

/// Turns a `RuleSet` into a `RulesResult`. The theory (why the cascade gives these shares,
/// how much rounding the printed probabilities allow) is in `Sources/LBRules/README.md`.
public enum RulesAnalyzer {
  public static func analyze(
    _ ruleSet: RuleSet, options: AnalysisOptions = AnalysisOptions(), trace: PacketTrace? = nil,
    clockSource: String? = nil
  ) -> RulesResult {
    var services = ruleSet.services
    let total = services.count
    if let focus = options.service {
      services = services.filter { s in s.frontends.contains { $0.endpoint == focus } }
    }
    var findings: [Finding] = []
    var distributions: [Distribution?] = []
    for service in services {
      findings += serviceFindings(service)
      let d = distribution(service, options: options)
      distributions.append(d)
      if let d, d.imbalanced { findings.append(imbalance(service, d)) }
    }
    let partial = ruleSet.inputs.filter { $0.partial || $0.issueCount > 0 }
    if !partial.isEmpty {
      findings.append(
        Finding(
          code: "capture-incomplete", severity: .info, service: nil,
          summary:
            "\(partial.count) rules input(s) were cut or damaged, so some services may be missing or incomplete",
          evidence: partial.map {
            "\($0.path): \($0.truncated) truncated, \($0.malformed) malformed, \($0.unsupported) unsupported lines"
          },
          remediation: "save the rules again in full: `iptables-save -c > iptables-save.txt`"))
    }
    findings.sort { lhs, rhs in
      (lhs.severity.rank, lhs.code, lhs.service ?? "") < (rhs.severity.rank, rhs.code, rhs.service ?? "")
    }
    return RulesResult(
      inputs: ruleSet.inputs, services: services, distributions: distributions,
      unlinkedPins: ruleSet.unlinkedPins, findings: findings, trace: trace, clockSource: clockSource,
      servicesFilteredOut: total - services.count)
  }

  /// The decimals the writer of a probability used: the fewest k for which the printed value
  /// is a k-decimal number after the kernel stored it as a multiple of 2⁻³¹
  /// (`xt_statistic`: `probability * 0x80000000`), printed by iptables-save with 11 decimals.
  public static func writerDecimals(_ p: Double) -> Int {
    var scale = 1.0
    for k in 1...11 {
      scale *= 10
      if abs(p - (p * scale).rounded() / scale) <= quantum + 0.5e-11 + 1e-15 { return k }
    }
    return 11
  }

  /// Half the kernel's probability step: the stored value is within 2⁻³² of what was asked.
  static let quantum = 1.0 / 4_294_967_296.0

  /// How far a cascade's shares may sit from an equal split and still be what kube-proxy
  /// meant: per rule, the rounding of the probability's text (kube-proxy printed 5 decimals
  /// up to 1.3-era releases and 10 since) plus the kernel's 2⁻³² step, summed over the rules
  /// a share depends on.
  public static func shareTolerance(probabilities: [Double?]) -> Double {
    let decimals = max(5, probabilities.compactMap { $0 }.map(writerDecimals).max() ?? 11)
    var unit = 0.5
    for _ in 0..<decimals { unit /= 10 }
    return Double(max(1, probabilities.count)) * (unit + quantum) + 1e-12
  }

  static func serviceFindings(_ s: ServiceRule) -> [Finding] {
    var out: [Finding] = []
    let label = s.name ?? s.frontends.first.map { "\(s.proto)/\($0)" } ?? s.chain ?? "?"
    let frontends = s.frontends.map { "`\($0)`" }.joined(separator: ", ")

    // Stale probabilities: shares that are not an equal split over the endpoints.
    let balanced = s.backends.filter { $0.expectedShare != nil }
    if balanced.count >= 2 {
      let n = balanced.count
      let tolerance = shareTolerance(probabilities: balanced.map(\.probability))
      let equal = 1 / Double(n)
      let off = balanced.filter { abs(($0.expectedShare ?? 0) - equal) > tolerance }
      if !off.isEmpty {
        var evidence = balanced.enumerated().map { i, b in
          let p =
            b.probability.map { "--probability \(NumberText.decimal($0, places: 11))" }
            ?? "no statistic match (takes the rest)"
          let ideal = ProbabilityIdeal.text(i, n)
          return
            "\(b.endpoint): \(p) (kube-proxy would write \(ideal)) → \(NumberText.percent(b.expectedShare ?? 0)) of new connections, \(NumberText.percent(equal)) expected"
        }
        if let chain = s.chain {
          evidence.append(
            "chain \(chain), rules at lines \(balanced.map { String($0.location.line) }.joined(separator: ", "))"
          )
        }
        let worst = off.max { abs(($0.expectedShare ?? 0) - equal) < abs(($1.expectedShare ?? 0) - equal) }
        out.append(
          Finding(
            code: "stale-probabilities", severity: .warning, service: label,
            summary:
              "\(label): the rules' probabilities do not split new connections equally over its \(n) endpoints (\(worst.map { "\($0.endpoint) gets \(NumberText.percent($0.expectedShare ?? 0))" } ?? "") instead of \(NumberText.percent(equal))); they look left from another endpoint count or written by hand",
            evidence: evidence,
            remediation:
              "make kube-proxy rewrite the rules (restart it on this node: `kubectl -n kube-system delete pod -l k8s-app=kube-proxy --field-selector spec.nodeName=NODE`), then check `iptables-save -t nat | grep \(s.chain ?? "KUBE-SVC")` shows 1/n, 1/(n-1), … 1/2"
          ))
      }
    }

    if s.backends.isEmpty, let action = s.noEndpoints {
      out.append(
        Finding(
          code: "no-endpoints", severity: .warning, service: label,
          summary:
            "\(label) has no ready endpoints: connections to \(frontends) are \(action == .reject ? "rejected" : "dropped")",
          evidence: [
            "the filter table \(action == .reject ? "rejects" : "drops") traffic to the service (\"has no endpoints\")"
          ],
          remediation:
            "check the Pods behind it: `kubectl -n \(namespace(label)) get endpointslices -l kubernetes.io/service-name=\(serviceShortName(label))`"
        ))
    }

    let external = s.frontends.filter { $0.kind != .clusterIP }
    if s.externalTrafficPolicy == .local && !external.isEmpty
      && !s.backends.contains(where: { $0.isLocal == true || ($0.expectedShareExternal ?? 0) > 0 })
    {
      let action = s.noLocalEndpoints
      let verb = action == .reject ? "rejected" : action == .drop ? "dropped" : "not served"
      out.append(
        Finding(
          code: "no-local-endpoints", severity: .warning, service: label,
          summary:
            "\(label): NodePort/external traffic arriving at this node (\(external.map { "`\($0)`" }.joined(separator: ", "))) is \(verb): externalTrafficPolicy is Local and none of its \(s.backends.count) endpoints runs on this node",
          evidence: [
            "externalTrafficPolicy Local: external traffic may only go to this node's endpoints",
            action.map { "the rules \($0 == .reject ? "reject" : "drop") it (\"has no local endpoints\")" }
              ?? "the external path of the rules reaches no endpoint",
          ],
          remediation:
            "make sure the load balancer health-checks the service's healthCheckNodePort (`kubectl -n \(namespace(label)) get svc \(serviceShortName(label)) -o jsonpath='{.spec.healthCheckNodePort}'`) so it skips this node, or run an endpoint here; or, if client addresses need not be kept, `kubectl -n \(namespace(label)) patch svc \(serviceShortName(label)) -p '{\"spec\":{\"externalTrafficPolicy\":\"Cluster\"}}'`"
        ))
    }

    let hiding = s.masquerade.intersection([.externalPolicyCluster, .clusterIPAll])
    if !hiding.isEmpty || (s.affinity != nil && s.masquerade.contains(.clusterIPFromOutsideCluster)) {
      let reasons = s.masquerade.sorted().map(\.rawValue).joined(separator: ", ")
      out.append(
        Finding(
          code: "masquerade-hides-client-ip", severity: s.affinity != nil ? .warning : .info, service: label,
          summary:
            "\(label): the rules masquerade \(hiding.contains(.clusterIPAll) ? "all traffic to the service" : hiding.contains(.externalPolicyCluster) ? "NodePort/external traffic (externalTrafficPolicy Cluster)" : "traffic from outside the cluster") to the node's address, so backends\(s.affinity != nil ? " and ClientIP affinity" : "") see the node instead of the client",
          evidence: ["masquerade reasons: \(reasons)"]
            + (s.affinity != nil
              ? ["sessionAffinity ClientIP pins by source address: every masqueraded client counts as one"]
              : []),
          remediation:
            "set `externalTrafficPolicy: Local` on the service if backends or affinity need the client address (`kubectl -n \(namespace(label)) patch svc \(serviceShortName(label)) -p '{\"spec\":{\"externalTrafficPolicy\":\"Local\"}}'`)"
        ))
    }
    return out
  }

  /// Goodness of fit of the datapath's own per-endpoint counters against the expected shares.
  static func distribution(_ s: ServiceRule, options: AnalysisOptions) -> Distribution? {
    let counted = s.backends.filter { $0.observedConnections != nil && ($0.expectedShare ?? 0) > 0 }
    guard counted.count >= 2 else { return nil }
    var d = Distribution()
    let counts = counted.map { Double($0.observedConnections ?? 0) }
    let total = counts.reduce(0, +)
    d.total = Int(clamping: counted.reduce(UInt64(0)) { $0 &+ ($1.observedConnections ?? 0) })
    d.backendCount = counted.count
    d.expectation = "the rules' expected shares (probability cascade)"
    d.metric = "connections"
    d.coefficientOfVariation = Statistics.coefficientOfVariation(counts)
    d.gini = Statistics.gini(counts)
    if let lo = counts.min(), let hi = counts.max() {
      d.maxMinRatio = lo > 0 ? hi / lo : nil
      d.maxMeanRatio = total > 0 ? hi / (total / Double(counts.count)) : nil
    }
    // Under externalTrafficPolicy Local the same DNAT rule counts cluster-IP connections (all
    // endpoints) and external ones (local endpoints only): with no way to split the counters,
    // neither set of shares is the expectation.
    if s.backends.contains(where: { b in
      b.expectedShareExternal.map { abs($0 - (b.expectedShare ?? 0)) > 1e-9 } ?? false
    }) {
      d.verdict =
        "not judged: the DNAT counters mix cluster-IP and external traffic, whose shares differ under externalTrafficPolicy Local"
      return d
    }
    let shareSum = counted.reduce(0.0) { $0 + ($1.expectedShare ?? 0) }
    let expected = counted.map { ($0.expectedShare ?? 0) / shareSum * total }
    guard total > 0, expected.allSatisfy({ $0 >= options.minExpectedPerBackend }) else {
      d.verdict = "too few counted connections (\(Int(total))) to judge"
      return d
    }
    var chi = 0.0
    for (o, e) in zip(counts, expected) { chi += (o - e) * (o - e) / e }
    d.chiSquare = chi
    d.degreesOfFreedom = counts.count - 1
    let p = Statistics.chiSquareUpperTail(chi, degreesOfFreedom: counts.count - 1)
    d.pValue = p
    let w = (chi / total).squareRoot()
    d.effectSize = w
    d.judged = true
    d.imbalanced = p < options.alpha && w >= options.minEffectSize
    d.verdict =
      d.imbalanced
      ? "the DNAT counters differ from the rules' shares (χ² = \(NumberText.decimal(chi, places: 1)), \(NumberText.pValue(p)), w = \(NumberText.decimal(w, places: 2)))"
      : "the DNAT counters fit the rules' shares (\(NumberText.pValue(p)))"
    return d
  }

  static func imbalance(_ s: ServiceRule, _ d: Distribution) -> Finding {
    let label = s.name ?? s.frontends.first.map { "\(s.proto)/\($0)" } ?? "?"
    let counts = s.backends.map {
      "\($0.endpoint): \($0.observedConnections.map(String.init) ?? "–") new connections, \(NumberText.percent($0.expectedShare ?? 0)) expected"
    }
    if let affinity = s.affinity {
      var pinned: [Endpoint: Int] = [:]
      for pin in s.pinnedClients { if let b = pin.backend { pinned[b, default: 0] += 1 } }
      let pins = s.backends.map { "\($0.endpoint): \(pinned[$0.endpoint] ?? 0) pinned client address(es)" }
      return Finding(
        code: "affinity-concentrates-traffic", severity: .warning, service: label,
        summary:
          "\(label): the datapath's counters are uneven although the rules split new clients equally; ClientIP affinity (\(affinity.timeoutSeconds.map { "\($0) s" } ?? "timeout unknown")) sends every connection of a pinned address to one endpoint",
        evidence: [d.verdict] + counts + (s.pinnedClients.isEmpty ? [] : pins),
        remediation:
          "if clients arrive through NAT gateways or masquerade, drop ClientIP affinity or shorten its timeout (`sessionAffinityConfig.clientIP.timeoutSeconds`); `lbscope conntrack` on the node shows which addresses carry the load"
      )
    }
    return Finding(
      code: "imbalanced-distribution", severity: .warning, service: label,
      summary:
        "\(label): the datapath's counters spread new connections unevenly compared with the rules' shares",
      evidence: [d.verdict] + counts,
      remediation:
        "counters add up since the rules were written; compare two `iptables-save -c` taken minutes apart, and run `lbscope conntrack` to see which clients carry the load"
    )
  }

  static func namespace(_ label: String) -> String {
    label.split(separator: "/").first.map(String.init) ?? "NAMESPACE"
  }

  static func serviceShortName(_ label: String) -> String {
    guard let rest = label.split(separator: "/", maxSplits: 1).dropFirst().first else { return "NAME" }
    return String(rest.split(separator: ":", omittingEmptySubsequences: false).first ?? rest)
  }
}

/// kube-proxy's probability for rule i of n, as text.
enum ProbabilityIdeal {
  static func text(_ i: Int, _ n: Int) -> String {
    i < n - 1 ? NumberText.decimal(1 / Double(n - i), places: 10) : "no statistic match"
  }
}
