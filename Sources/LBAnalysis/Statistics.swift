#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Distribution functions for the tests lbscope runs. Implementations follow Press et al.,
/// *Numerical Recipes* (3rd ed.), §6.2 (incomplete gamma) and §6.4 (incomplete beta).
public enum Statistics {
  /// The upper tail of the chi-square distribution: P(X ≥ statistic) for `degreesOfFreedom`.
  public static func chiSquareUpperTail(_ statistic: Double, degreesOfFreedom: Int) -> Double {
    guard degreesOfFreedom > 0 else { return 1 }
    guard statistic > 0 else { return 1 }
    return regularizedGammaQ(Double(degreesOfFreedom) / 2, statistic / 2)
  }

  /// Q(a, x) = Γ(a, x) / Γ(a), the regularized upper incomplete gamma function.
  public static func regularizedGammaQ(_ a: Double, _ x: Double) -> Double {
    if x <= 0 { return 1 }
    if x < a + 1 { return max(0, min(1, 1 - gammaSeries(a, x))) }
    return max(0, min(1, gammaContinuedFraction(a, x)))
  }

  /// P(a, x) by its series; converges quickly for x < a + 1.
  static func gammaSeries(_ a: Double, _ x: Double) -> Double {
    var sum = 1 / a
    var term = sum
    var ap = a
    for _ in 0..<10_000 {
      ap += 1
      term *= x / ap
      sum += term
      if abs(term) < abs(sum) * 1e-15 { break }
    }
    return sum * exp(-x + a * log(x) - lgamma(a))
  }

  /// Q(a, x) by Lentz's continued fraction; converges quickly for x ≥ a + 1.
  static func gammaContinuedFraction(_ a: Double, _ x: Double) -> Double {
    let tiny = 1e-300
    var b = x + 1 - a
    var c = 1 / tiny
    var d = 1 / b
    var h = d
    for i in 1..<10_000 {
      let an = -Double(i) * (Double(i) - a)
      b += 2
      d = an * d + b
      if abs(d) < tiny { d = tiny }
      c = b + an / c
      if abs(c) < tiny { c = tiny }
      d = 1 / d
      let delta = d * c
      h *= delta
      if abs(delta - 1) < 1e-15 { break }
    }
    return exp(-x + a * log(x) - lgamma(a)) * h
  }

  /// P(X ≥ k) for X ~ Binomial(n, p), through the identity P(X ≥ k) = I_p(k, n − k + 1).
  public static func binomialUpperTail(n: Int, k: Int, p: Double) -> Double {
    if k <= 0 { return 1 }
    if k > n { return 0 }
    if p <= 0 { return 0 }
    if p >= 1 { return 1 }
    if k == n { return pow(p, Double(n)) }  // all n: the common case for sticky clients
    return regularizedBeta(p, Double(k), Double(n - k + 1))
  }

  /// I_x(a, b), the regularized incomplete beta function.
  public static func regularizedBeta(_ x: Double, _ a: Double, _ b: Double) -> Double {
    if x <= 0 { return 0 }
    if x >= 1 { return 1 }
    let logFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1 - x)
    if x < (a + 1) / (a + b + 2) {
      return max(0, min(1, exp(logFront) * betaContinuedFraction(x, a, b) / a))
    }
    return max(0, min(1, 1 - exp(logFront) * betaContinuedFraction(1 - x, b, a) / b))
  }

  static func betaContinuedFraction(_ x: Double, _ a: Double, _ b: Double) -> Double {
    let tiny = 1e-300
    let qab = a + b
    let qap = a + 1
    let qam = a - 1
    var c = 1.0
    var d = 1 - qab * x / qap
    if abs(d) < tiny { d = tiny }
    d = 1 / d
    var h = d
    for m in 1..<10_000 {
      let m = Double(m)
      let m2 = 2 * m
      var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
      d = 1 + aa * d
      if abs(d) < tiny { d = tiny }
      c = 1 + aa / c
      if abs(c) < tiny { c = tiny }
      d = 1 / d
      h *= d * c
      aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
      d = 1 + aa * d
      if abs(d) < tiny { d = tiny }
      c = 1 + aa / c
      if abs(c) < tiny { c = tiny }
      d = 1 / d
      let delta = d * c
      h *= delta
      if abs(delta - 1) < 1e-15 { break }
    }
    return h
  }

  /// Coefficient of variation (population standard deviation over mean); 0 for no data.
  public static func coefficientOfVariation(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let mean = values.reduce(0, +) / Double(values.count)
    guard mean > 0 else { return 0 }
    let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
    return variance.squareRoot() / mean
  }

  /// The Gini coefficient of non-negative values: 0 for perfect equality, (n−1)/n when one
  /// value holds everything.
  public static func gini(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let n = Double(sorted.count)
    let total = sorted.reduce(0, +)
    guard n > 0, total > 0 else { return 0 }
    var weighted = 0.0
    for (i, value) in sorted.enumerated() { weighted += Double(i + 1) * value }
    return (2 * weighted) / (n * total) - (n + 1) / n
  }

  /// Wilson score interval for a binomial proportion (95% by default).
  public static func wilsonInterval(successes: Int, trials: Int, z: Double = 1.959964)
    -> (lower: Double, upper: Double)?
  {
    guard trials > 0 else { return nil }
    let n = Double(trials)
    let p = Double(successes) / n
    let z2 = z * z
    let center = (p + z2 / (2 * n)) / (1 + z2 / n)
    let half = z * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot() / (1 + z2 / n)
    return (max(0, center - half), min(1, center + half))
  }
}
