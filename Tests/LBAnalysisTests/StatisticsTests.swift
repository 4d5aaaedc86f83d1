import LBAnalysis
import Testing

@Suite struct StatisticsTests {
  @Test func chiSquareTailMatchesTables() {
    // Critical values from standard tables.
    #expect(abs(Statistics.chiSquareUpperTail(3.841459, degreesOfFreedom: 1) - 0.05) < 1e-6)
    #expect(abs(Statistics.chiSquareUpperTail(7.814728, degreesOfFreedom: 3) - 0.05) < 1e-6)
    #expect(abs(Statistics.chiSquareUpperTail(16.26624, degreesOfFreedom: 3) - 0.001) < 1e-7)
    #expect(abs(Statistics.chiSquareUpperTail(2, degreesOfFreedom: 2) - 0.36787944) < 1e-7)
    #expect(Statistics.chiSquareUpperTail(0, degreesOfFreedom: 4) == 1)
  }

  @Test func binomialTailMatchesDirectSums() {
    // P(X ≥ 3) for X ~ Bin(5, 0.5) = (10 + 5 + 1) / 32
    #expect(abs(Statistics.binomialUpperTail(n: 5, k: 3, p: 0.5) - 0.5) < 1e-12)
    // P(X ≥ 15) for X ~ Bin(15, 0.25) = 0.25^15
    #expect(abs(Statistics.binomialUpperTail(n: 15, k: 15, p: 0.25) / 9.313225746154785e-10 - 1) < 1e-9)
    #expect(Statistics.binomialUpperTail(n: 10, k: 0, p: 0.3) == 1)
    #expect(Statistics.binomialUpperTail(n: 10, k: 11, p: 0.3) == 0)
  }

  @Test func giniAndCoefficientOfVariation() {
    #expect(Statistics.gini([5, 5, 5, 5]) == 0)
    #expect(abs(Statistics.gini([0, 0, 0, 12]) - 0.75) < 1e-12)
    #expect(Statistics.coefficientOfVariation([3, 3, 3]) == 0)
    #expect(abs(Statistics.coefficientOfVariation([1, 3]) - 0.5) < 1e-12)
  }

  @Test func wilsonIntervalContainsTheEstimate() throws {
    let interval = try #require(Statistics.wilsonInterval(successes: 45, trials: 165))
    #expect(interval.lower < 45.0 / 165 && 45.0 / 165 < interval.upper)
    #expect(abs(interval.lower - 0.2113) < 0.001)
  }
}

@Suite struct DistributionJudgeTests {
  let judge = DistributionJudge(options: AnalysisOptions())

  @Test func anEvenSplitIsBalanced() {
    let d = judge.judge(
      counts: [39, 40, 35, 36], expectedShares: [0.25, 0.25, 0.25, 0.25], expectation: "equal")
    #expect(d.judged)
    #expect(!d.imbalanced)
    #expect((d.pValue ?? 0) > 0.5)
  }

  @Test func aSkewNeedsBothSignificanceAndEffect() {
    let skewed = judge.judge(
      counts: [15, 45, 105], expectedShares: [1.0 / 3, 1.0 / 3, 1.0 / 3], expectation: "equal")
    #expect(skewed.imbalanced)
    // A million connections make a 1% deviation significant, but it is not practical.
    let tiny = judge.judge(
      counts: [253_000, 247_000, 250_000, 250_000], expectedShares: [0.25, 0.25, 0.25, 0.25],
      expectation: "equal")
    #expect((tiny.pValue ?? 1) < 0.001)
    #expect(!tiny.imbalanced)
  }

  @Test func tooFewConnectionsAreNotJudged() {
    let d = judge.judge(
      counts: [3, 0, 1], expectedShares: [1.0 / 3, 1.0 / 3, 1.0 / 3], expectation: "equal")
    #expect(!d.judged)
    #expect(!d.imbalanced)
    #expect(d.verdict.hasPrefix("too few connections"))
    #expect(d.maxMinRatio == nil, "a backend with nothing makes max/min unbounded")
  }
}
