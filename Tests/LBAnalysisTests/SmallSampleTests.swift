import Foundation
import LBAnalysis
import LBCore
import Testing

/// The goodness-of-fit test on few connections (exact or simulated instead of χ²) and on
/// connections to backends the expectation gives no share.
@Suite struct SmallSampleTests {
  let judge = DistributionJudge(options: AnalysisOptions())

  /// Two equal backends, 9 and 1: the outcomes at least as extreme are 10/0, 9/1, 1/9 and 0/10,
  /// so p = 2 · (1 + 10) / 2¹⁰.
  @Test func exactPValueOfAKnownCase() {
    let result = SmallSampleTest.pValue(counts: [9, 1], shares: [0.5, 0.5])
    #expect(result.method == .exact)
    #expect(abs(result.p - 22.0 / 1024) < 1e-12)
  }

  /// Twelve connections, all on one of four equal backends: 3 expected each is below the χ²
  /// rule of thumb, but the exact test rejects an equal split (p = 4 · 0.25¹² ≈ 2.4e-7).
  @Test func fewConnectionsAllOnOneBackendAreJudgedExactly() {
    let d = judge.judge(
      counts: [12, 0, 0, 0], expectedShares: [0.25, 0.25, 0.25, 0.25], expectation: "equal")
    #expect(d.judged)
    #expect(d.imbalanced, "\(d.verdict)")
    #expect(d.pValueMethod == "exact")
    #expect(abs((d.pValue ?? 1) - 4 * pow(0.25, 12)) < 1e-12)
    #expect(d.verdict.contains("exact"))
  }

  @Test func fewConnectionsSpreadEvenlyAreBalanced() {
    let d = judge.judge(
      counts: [3, 3, 2, 4], expectedShares: [0.25, 0.25, 0.25, 0.25], expectation: "equal")
    #expect(d.judged)
    #expect(!d.imbalanced)
    #expect((d.pValue ?? 0) > 0.5)
  }

  /// Four connections over four backends: even all four on one (p = 4 · 0.25⁴ ≈ 0.016) could
  /// not reach α = 0.001.
  @Test func tooFewToJudgeWhenNoOutcomeCouldReachAlpha() {
    let d = judge.judge(
      counts: [4, 0, 0, 0], expectedShares: [0.25, 0.25, 0.25, 0.25], expectation: "equal")
    #expect(!d.judged)
    #expect(!d.imbalanced)
    #expect(d.verdict.hasPrefix("too few connections to judge"))
    #expect(d.pValue != nil)
  }

  /// Thirty backends and sixty connections: too many outcomes to enumerate, so a seeded
  /// simulation, the same on every run.
  @Test func manyBackendsAreSimulatedDeterministically() {
    let shares = [Double](repeating: 1.0 / 30, count: 30)
    let even = SmallSampleTest.pValue(counts: [Int](repeating: 2, count: 30), shares: shares)
    #expect(even.method == .monteCarlo)
    #expect(even.p > 0.9)
    #expect(SmallSampleTest.pValue(counts: [Int](repeating: 2, count: 30), shares: shares).p == even.p)
    let skewed = SmallSampleTest.pValue(counts: [60] + [Int](repeating: 0, count: 29), shares: shares)
    #expect(skewed.p == 1.0 / Double(1 + (skewed.simulations ?? 0)))
    let d = judge.judge(
      counts: [60] + [Int](repeating: 0, count: 29), expectedShares: shares, expectation: "equal")
    #expect(d.imbalanced && d.pValueMethod == "monte-carlo" && d.simulations == skewed.simulations)
  }

  /// Under externalTrafficPolicy Local, NodePort traffic reaching a remote endpoint is
  /// impossible by this node's rules: χ² over the other backends alone would miss it.
  @Test func connectionsToZeroShareBackendsRejectTheFit() {
    let d = judge.judge(counts: [10, 10, 10, 10], expectedShares: [0.5, 0.5, 0, 0], expectation: "local")
    #expect(d.pValue == 0)
    #expect(d.chiSquare == nil)
    #expect(d.imbalanced, "\(d.verdict)")
    #expect(d.verdict.contains("20 of 40 connections"))
  }

  @Test func aFewStrayConnectionsToZeroShareBackendsDoNotMatter() {
    let d = judge.judge(counts: [500, 499, 1, 0], expectedShares: [0.5, 0.5, 0, 0], expectation: "local")
    #expect(d.pValue == 0)
    #expect(!d.imbalanced, "\(d.verdict)")
    #expect(d.verdict.hasPrefix("balanced in practice"))
  }
}
