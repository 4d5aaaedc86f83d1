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

/// Goodness-of-fit p-values for small samples, where the χ² approximation is not trusted (an
/// expected count below 5): the exact multinomial test when its outcomes can be enumerated,
/// otherwise a Monte Carlo estimate with a fixed seed, so the same counts always give the same
/// p-value. Both rank outcomes by Pearson's χ² statistic.
public enum SmallSampleTest {
  /// How a p-value was computed.
  public enum Method: String, Sendable {
    case chiSquare = "chi-square"
    case exact
    case monteCarlo = "monte-carlo"
  }

  /// Outcomes enumerated at most; past it the p-value is simulated.
  public static let maximumOutcomes = 200_000
  /// Draws of the simulation (fewer for large samples, at least 1,000: the smallest p-value it
  /// can give is 1/(draws + 1), below the default α of 0.001).
  public static let draws = 10_000

  /// The p-value of `counts` (all cells with a positive share) against `shares` (summing to 1),
  /// and how it was computed; `simulations` is the number of draws when simulated.
  public static func pValue(counts: [Int], shares: [Double]) -> (
    p: Double, method: Method, simulations: Int?
  ) {
    let n = counts.reduce(0, +)
    guard counts.count > 1, n > 0 else { return (1, .exact, nil) }
    let observed = statistic(counts, shares, n)
    if let outcomes = compositions(n, counts.count), outcomes <= maximumOutcomes {
      return (exact(n: n, shares: shares, observed: observed), .exact, nil)
    }
    let rounds = max(1_000, min(draws, 50_000_000 / max(1, n)))
    return (
      simulated(counts: counts, shares: shares, observed: observed, rounds: rounds), .monteCarlo, rounds
    )
  }

  /// Pearson's χ².
  static func statistic(_ counts: [Int], _ shares: [Double], _ n: Int) -> Double {
    var chi2 = 0.0
    for (c, p) in zip(counts, shares) {
      let e = p * Double(n)
      chi2 += (Double(c) - e) * (Double(c) - e) / e
    }
    return chi2
  }

  /// C(n + k − 1, k − 1), the number of ways to spread n connections over k backends; nil past
  /// `maximumOutcomes`.
  static func compositions(_ n: Int, _ k: Int) -> Int? {
    var result = 1.0
    for i in 1..<k {
      result = result * Double(n + i) / Double(i)
      if result > Double(maximumOutcomes) { return nil }
    }
    return Int(result.rounded())
  }

  /// The sum of the probabilities of every outcome at least as far from the shares (by χ²) as
  /// the observed one.
  static func exact(n: Int, shares: [Double], observed: Double) -> Double {
    let k = shares.count
    let logShares = shares.map { log($0) }
    let logFactorials = (0...n).map { (i: Int) -> Double in lgamma(Double(i) + 1) }
    var cell = [Int](repeating: 0, count: k)
    var total = 0.0
    let tolerance = 1e-9 * max(1, observed)
    func walk(_ i: Int, _ remaining: Int) {
      if i == k - 1 {
        cell[i] = remaining
        var logP = logFactorials[n]
        var chi2 = 0.0
        for j in 0..<k {
          logP += Double(cell[j]) * logShares[j] - logFactorials[cell[j]]
          let e = shares[j] * Double(n)
          chi2 += (Double(cell[j]) - e) * (Double(cell[j]) - e) / e
        }
        if chi2 >= observed - tolerance { total += exp(logP) }
        return
      }
      for x in 0...remaining {
        cell[i] = x
        walk(i + 1, remaining - x)
      }
    }
    walk(0, n)
    return min(1, total)
  }

  /// (1 + draws at least as extreme) / (1 + draws), from `rounds` multinomial samples drawn
  /// with SplitMix64 seeded by the counts.
  static func simulated(counts: [Int], shares: [Double], observed: Double, rounds: Int) -> Double {
    let n = counts.reduce(0, +)
    var cumulative: [Double] = []
    var sum = 0.0
    for p in shares {
      sum += p
      cumulative.append(sum)
    }
    var seed: UInt64 = 0xCBF2_9CE4_8422_2325
    for c in counts { seed = (seed ^ UInt64(truncatingIfNeeded: c)) &* 0x100_0000_01B3 }
    var random = SplitMix64(seed: seed)
    var sample = [Int](repeating: 0, count: counts.count)
    var extreme = 0
    let tolerance = 1e-9 * max(1, observed)
    for _ in 0..<rounds {
      for j in sample.indices { sample[j] = 0 }
      for _ in 0..<n {
        let u = random.unit() * sum
        var lo = 0
        var hi = cumulative.count - 1
        while lo < hi {
          let mid = (lo + hi) / 2
          if cumulative[mid] > u { hi = mid } else { lo = mid + 1 }
        }
        sample[lo] += 1
      }
      if statistic(sample, shares, n) >= observed - tolerance { extreme += 1 }
    }
    return Double(1 + extreme) / Double(1 + rounds)
  }
}

/// Steele, Lea and Flood's SplitMix64: a small, fast, seedable generator, so simulated p-values
/// are the same on every run.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  /// The state advanced by the golden gamma, through SplitMix64's finalizer (`mix`, which adds
  /// the gamma itself).
  mutating func next() -> UInt64 {
    defer { state &+= 0x9E37_79B9_7F4A_7C15 }
    return mix(state)
  }
  /// Uniform in [0, 1) with 53 random bits.
  mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}
