/// Short, locale-free number text for findings, verdicts and Markdown, so every place that
/// prints a share or a p-value prints it the same way.
public enum NumberText {
  /// `value` rounded to `places` decimals, without a trailing `.0` (`0.68`, `7`, `0.001`).
  public static func decimal(_ value: Double, places: Int) -> String {
    guard value.isFinite else { return value > 0 ? "∞" : value < 0 ? "-∞" : "NaN" }
    var scale = 1.0
    for _ in 0..<max(0, places) { scale *= 10 }
    var text = String((value * scale).rounded() / scale)
    if text.hasSuffix(".0") { text.removeLast(2) }
    return text
  }

  /// A share in [0, 1] as a percentage with one decimal (`63.6%`, `26%`).
  public static func percent(_ share: Double) -> String {
    decimal(share * 100, places: 1) + "%"
  }

  /// `p = 0.0123`, or `p < 0.0001` when smaller.
  public static func pValue(_ p: Double) -> String {
    p < 0.0001 ? "p < 0.0001" : "p = " + decimal(p, places: 4)
  }
}
