import LBCore

/// What each IPVS scheduler says about the share of new connections (or, with persistence,
/// new clients) a real server gets. See README.md beside this file.
public enum IPVSScheduler {
  /// Schedulers whose long-run share follows the weights.
  static let weightProportional: Set<String> = ["wrr", "wlc", "sed", "nq", "mh", "lblc", "lblcr", "twos"]

  /// The expected share of each real server, in the order given, or `nil` (with the reason)
  /// when the scheduler makes shares depend on something the rules do not say.
  ///
  /// - `rr`: equal over the servers with weight > 0 (weight 0 servers are quiesced).
  /// - `wrr`, `wlc`, `sed`, `nq`, `mh` (and `lblc`, `lblcr`, `twos`): weight / Σ weights, a long-run
  ///   approximation: `wlc`/`sed`/`nq` pick by active connections over weight, which converges to
  ///   weight-proportional shares when connections last alike.
  /// - `fo`: everything to the highest-weight server.
  /// - `lc`: least connections, ignores weights: depends on how long connections last.
  /// - `sh`, `dh`: hashes of the source or destination address: depends on the client population.
  public static func expectedShares(scheduler: String, weights: [Int]) -> (shares: [Double]?, note: String?) {
    if weights.isEmpty { return ([], nil) }
    let positive = weights.map { max($0, 0) }
    let total = positive.reduce(0, +)
    if total == 0 { return (weights.map { _ in 0 }, "every real server has weight 0: no new connections") }
    switch scheduler {
    case "rr":
      let active = positive.filter { $0 > 0 }.count
      return (positive.map { $0 > 0 ? 1.0 / Double(active) : 0 }, nil)
    case _ where weightProportional.contains(scheduler):
      let note: String? =
        scheduler == "wrr" || scheduler == "mh"
        ? nil
        : "\(scheduler) shares are weight-proportional only in the long run (equal connection lifetimes)"
      return (positive.map { Double($0) / Double(total) }, note)
    case "fo":
      guard let top = positive.max(), let first = positive.firstIndex(of: top) else { return (nil, nil) }
      return (positive.indices.map { $0 == first ? 1 : 0 }, nil)
    case "lc":
      return (nil, "lc ignores weights and follows connection lifetimes: no expected share")
    case "sh", "dh":
      return (
        nil,
        "\(scheduler) hashes the \(scheduler == "sh" ? "source" : "destination") address: shares follow the client population"
      )
    default:
      return (nil, "scheduler \(scheduler) is not modelled: no expected share")
    }
  }
}

/// The `weights-uneven` finding's facts for one IPVS service, for the analysis or the
/// `rules` command to turn into a finding (LBRules does not depend on LBAnalysis).
public struct IPVSWeightsUnevenness: Sendable, Hashable {
  /// Always `weights-uneven` (REPORT-CONTRACT.md).
  public static let code = "weights-uneven"
  /// `warning` when a server is quiesced (weight 0) or shares differ by 2× or more, else `info`.
  public var severity: String
  public var summary: String
  public var evidence: [String]
  public var remediation: String?

  /// Facts about a service whose weights (or scheduler) make shares unequal; `nil` when the
  /// service is not IPVS, has fewer than two real servers, or its shares are equal.
  public static func check(_ service: ServiceRule) -> IPVSWeightsUnevenness? {
    guard service.source == .ipvs, service.backends.count >= 2 else { return nil }
    let weights = service.backends.map { $0.weight ?? 1 }
    let scheduler = service.scheduler ?? "?"
    let label = service.frontends.first?.description ?? service.chain ?? "IPVS service"
    let zero = service.backends.filter { ($0.weight ?? 1) <= 0 }
    var evidence = service.backends.map { b in
      "\(b.endpoint) weight \(b.weight.map(String.init) ?? "?")"
        + (b.expectedShare.map { " share \(formatShare($0))" } ?? "")
    }
    evidence.insert("scheduler \(scheduler)", at: 0)
    if !zero.isEmpty, zero.count < service.backends.count {
      return IPVSWeightsUnevenness(
        severity: "warning",
        summary:
          "\(label): \(zero.count) of \(service.backends.count) real servers have weight 0 and get no new connections",
        evidence: evidence,
        remediation:
          "ipvsadm -e -t \(label) -r \(zero[0].endpoint) -w 1   # or let kube-proxy re-sync the endpoint")
    }
    let positive = weights.filter { $0 > 0 }
    guard IPVSScheduler.weightProportional.contains(scheduler) || scheduler == "fo",
      let low = positive.min(), let high = positive.max(), low != high
    else { return nil }
    let ratio = Double(high) / Double(low)
    return IPVSWeightsUnevenness(
      severity: ratio >= 2 ? "warning" : "info",
      summary:
        "\(label): \(scheduler) weights range from \(low) to \(high), so the heaviest real server expects \(formatShare(ratio))× the lightest's connections",
      evidence: evidence,
      remediation: "kube-proxy sets weight 1 on every endpoint; find who changed the weights (ipvsadm -S -n)")
  }

  static func formatShare(_ value: Double) -> String {
    let scaled = (value * 1000).rounded() / 1000
    return String(scaled)
  }
}
