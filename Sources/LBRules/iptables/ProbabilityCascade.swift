/// The chance each rule of kube-proxy's `-m statistic --mode random` cascade is taken.
///
/// The rules of a `KUBE-SVC-…` chain are tried in order; rule i matches with its probability
/// p_i, and only the packets no earlier rule took reach it. So endpoint i gets
///
///     share_i = p_i × Π_{j<i} (1 − p_j)
///
/// and a rule without `statistic` (kube-proxy's last one) takes whatever is left. kube-proxy
/// writes p_i = 1/(n − i) so that every share is 1/n.
public enum ProbabilityCascade {
  /// The shares of a cascade whose rules have these probabilities (`nil`: the rule always
  /// matches). Rules after an unconditional one get 0.
  public static func shares(_ probabilities: [Double?]) -> [Double] {
    var remaining = 1.0
    var out: [Double] = []
    out.reserveCapacity(probabilities.count)
    for p in probabilities {
      let take = remaining * min(max(p ?? 1, 0), 1)
      out.append(take)
      remaining -= take
    }
    return out
  }

  /// What kube-proxy would have written for rule `i` of `n`: 1/(n − i), the last rule none.
  public static func ideal(_ i: Int, of n: Int) -> Double? { i < n - 1 ? 1 / Double(n - i) : nil }
}
