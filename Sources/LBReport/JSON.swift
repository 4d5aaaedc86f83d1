/// A JSON value rendered deterministically: object keys sorted, doubles rounded to six decimal
/// places and printed without exponents, two-space indentation.
public indirect enum JSON: Sendable, Equatable {
  case null
  case bool(Bool)
  case int(Int64)
  case double(Double)
  case string(String)
  case array([JSON])
  case object([String: JSON])

  public static func number<T: BinaryInteger>(_ value: T) -> JSON { .int(Int64(clamping: value)) }
  public static func optional<T: BinaryInteger>(_ value: T?) -> JSON {
    value.map { .int(Int64(clamping: $0)) } ?? .null
  }
  public static func optional(_ value: Double?) -> JSON { value.map { .double($0) } ?? .null }
  public static func optional(_ value: String?) -> JSON { value.map { .string($0) } ?? .null }
  public static func optional(_ value: Bool?) -> JSON { value.map { .bool($0) } ?? .null }

  /// The text, ending with a newline.
  public func rendered() -> String {
    var out = ""
    write(into: &out, indent: 0)
    out += "\n"
    return out
  }

  func write(into out: inout String, indent: Int) {
    switch self {
    case .null: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .int(let i): out += String(i)
    case .double(let d): out += JSON.formatDouble(d)
    case .string(let s): JSON.writeString(s, into: &out)
    case .array(let items):
      if items.isEmpty {
        out += "[]"
        return
      }
      out += "[\n"
      for (i, item) in items.enumerated() {
        out += String(repeating: " ", count: indent + 2)
        item.write(into: &out, indent: indent + 2)
        out += i + 1 < items.count ? ",\n" : "\n"
      }
      out += String(repeating: " ", count: indent) + "]"
    case .object(let members):
      if members.isEmpty {
        out += "{}"
        return
      }
      out += "{\n"
      let keys = members.keys.sorted()
      for (i, key) in keys.enumerated() {
        out += String(repeating: " ", count: indent + 2)
        JSON.writeString(key, into: &out)
        out += ": "
        members[key]?.write(into: &out, indent: indent + 2)
        out += i + 1 < keys.count ? ",\n" : "\n"
      }
      out += String(repeating: " ", count: indent) + "}"
    }
  }

  /// Six decimal places at most, trailing zeros dropped, never an exponent; non-finite → null.
  static func formatDouble(_ value: Double) -> String {
    guard value.isFinite else { return "null" }
    let scaled = (value * 1_000_000).rounded()
    if scaled == 0 { return "0" }
    let negative = scaled < 0
    let magnitude = abs(scaled)
    // Beyond what six decimals in an Int64 can hold, Swift's shortest form (`1e+20`) is valid JSON.
    guard magnitude < 9e18 else { return value.description }
    let units = UInt64(magnitude)
    let whole = units / 1_000_000
    var fraction = String(units % 1_000_000)
    fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
    while fraction.hasSuffix("0") { fraction.removeLast() }
    let text = fraction.isEmpty ? String(whole) : "\(whole).\(fraction)"
    return negative ? "-" + text : text
  }

  static func writeString(_ s: String, into out: inout String) {
    // Most strings (addresses, codes) need no escaping: append them whole.
    if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
      out += "\""
      out += s
      out += "\""
      return
    }
    out += "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 {
          let hex = String(scalar.value, radix: 16)
          out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    out += "\""
  }
}
