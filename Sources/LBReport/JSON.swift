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
  /// Text already rendered by `renderedBytes(indent:)` for the indentation where it appears:
  /// lets large parts of a document be rendered on several threads and then joined.
  case rendered([UInt8])

  public static func number<T: BinaryInteger>(_ value: T) -> JSON { .int(Int64(clamping: value)) }
  public static func optional<T: BinaryInteger>(_ value: T?) -> JSON {
    value.map { .int(Int64(clamping: $0)) } ?? .null
  }
  public static func optional(_ value: Double?) -> JSON { value.map { .double($0) } ?? .null }
  public static func optional(_ value: String?) -> JSON { value.map { .string($0) } ?? .null }
  public static func optional(_ value: Bool?) -> JSON { value.map { .bool($0) } ?? .null }

  /// The text, ending with a newline.
  public func rendered() -> String {
    String(decoding: renderedBytes(), as: UTF8.self)
  }

  /// The text as UTF-8, ending with a newline. Reports of tens of megabytes are written this
  /// way: appending bytes to one buffer costs a fraction of growing a `String` piece by piece.
  public func renderedBytes() -> [UInt8] {
    var out = renderedBytes(indent: 0)
    out.append(0x0A)
    return out
  }

  /// The text as UTF-8 in pieces, ending with a newline; their concatenation is
  /// `renderedBytes()`. Large parts rendered ahead (`.rendered`, such as the client lists of a
  /// report) are passed on as they are, where `renderedBytes()` copies them into one buffer.
  public func renderedPieces() -> [[UInt8]] {
    var pieces: [[UInt8]]? = []
    var out: [UInt8] = []
    out.reserveCapacity(1 << 12)
    write(into: &out, indent: 0, pieces: &pieces)
    out.append(0x0A)
    return (pieces ?? []) + [out]
  }

  /// Parts rendered ahead from this size on stand as pieces of their own in `renderedPieces()`.
  static let sharedPieceSize = 1 << 16

  /// The value's text as it appears nested `indent` spaces deep, without a final newline.
  public func renderedBytes(indent: Int) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity((1 << 12) + renderedPartsSize)
    write(into: &out, indent: indent)
    return out
  }

  /// The bytes of the parts rendered ahead (`.rendered`) in the value. The text is at least this
  /// long: reserving it up front spares copying a report of megabytes each time it outgrows
  /// its buffer.
  var renderedPartsSize: Int {
    switch self {
    case .null, .bool, .int, .double, .string: 0
    case .rendered(let text): text.count
    case .array(let items): items.reduce(0) { $0 + $1.renderedPartsSize }
    case .object(let members): members.values.reduce(0) { $0 + $1.renderedPartsSize }
    }
  }

  func write(into out: inout [UInt8], indent: Int) {
    var pieces: [[UInt8]]? = nil
    write(into: &out, indent: indent, pieces: &pieces)
  }

  /// Writes the text into `out`; with `pieces`, large parts rendered ahead end `out` as a piece
  /// and stand as one of their own, and `out` starts afresh.
  func write(into out: inout [UInt8], indent: Int, pieces: inout [[UInt8]]?) {
    switch self {
    case .null: JSON.writeLiteral("null", into: &out)
    case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
    case .int(let i): JSON.writeInteger(i, into: &out)
    case .double(let d): out.append(contentsOf: JSON.formatDouble(d).utf8)
    case .string(let s): JSON.writeString(s, into: &out)
    case .rendered(let text):
      if pieces != nil && text.count >= JSON.sharedPieceSize {
        pieces?.append(out)
        pieces?.append(text)
        out = []
        out.reserveCapacity(1 << 12)
      } else {
        out.append(contentsOf: text)
      }
    case .array(let items):
      if items.isEmpty {
        JSON.writeLiteral("[]", into: &out)
        return
      }
      JSON.writeLiteral("[\n", into: &out)
      for (i, item) in items.enumerated() {
        JSON.writeSpaces(indent + 2, into: &out)
        item.write(into: &out, indent: indent + 2, pieces: &pieces)
        if i + 1 < items.count { out.append(0x2C) }
        out.append(0x0A)
      }
      JSON.writeSpaces(indent, into: &out)
      out.append(0x5D)
    case .object(let members):
      if members.isEmpty {
        JSON.writeLiteral("{}", into: &out)
        return
      }
      JSON.writeLiteral("{\n", into: &out)
      let sorted = members.sorted { JSON.keyPrecedes($0.key, $1.key) }
      for (i, member) in sorted.enumerated() {
        JSON.writeSpaces(indent + 2, into: &out)
        JSON.writeString(member.key, into: &out)
        JSON.writeLiteral(": ", into: &out)
        member.value.write(into: &out, indent: indent + 2, pieces: &pieces)
        if i + 1 < sorted.count { out.append(0x2C) }
        out.append(0x0A)
      }
      JSON.writeSpaces(indent, into: &out)
      out.append(0x7D)
    }
  }

  /// Appends a literal's bytes (no `String` on the way).
  @inline(__always)
  static func writeLiteral(_ literal: StaticString, into out: inout [UInt8]) {
    out.append(contentsOf: UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
  }

  static func writeSpaces(_ count: Int, into out: inout [UInt8]) {
    var left = count
    while left > 0 {
      let n = min(left, spaces.count)
      spaces.withUnsafeBufferPointer { out.append(contentsOf: UnsafeBufferPointer(rebasing: $0[..<n])) }
      left -= n
    }
  }

  private static let spaces = [UInt8](repeating: 0x20, count: 64)

  static func writeInteger(_ value: Int64, into out: inout [UInt8]) {
    if value < 0 { out.append(0x2D) }
    var magnitude = value.magnitude
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 20 digits at most, written backwards
    var count = 0
    withUnsafeMutableBytes(of: &digits) { buffer in
      repeat {
        buffer[count] = UInt8(truncatingIfNeeded: magnitude % 10) + 0x30
        magnitude /= 10
        count += 1
      } while magnitude > 0
      for i in stride(from: count - 1, through: 0, by: -1) { out.append(buffer[i]) }
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

  /// Object keys in `String` order. For ASCII keys (field names, addresses) that is byte order,
  /// compared without `String`'s Unicode machinery; other keys take `String`'s comparison.
  static func keyPrecedes(_ a: String, _ b: String) -> Bool {
    let ordered: Bool?? = a.utf8.withContiguousStorageIfAvailable { x -> Bool? in
      let inner: Bool?? = b.utf8.withContiguousStorageIfAvailable { y -> Bool? in
        var i = 0
        let n = min(x.count, y.count)
        while i < n {
          let l = x[i]
          let r = y[i]
          if l >= 0x80 || r >= 0x80 { return nil }
          if l != r { return l < r }
          i += 1
        }
        // One is a prefix of the other: ASCII only if the rest is too.
        if x[n...].contains(where: { $0 >= 0x80 }) || y[n...].contains(where: { $0 >= 0x80 }) { return nil }
        return x.count < y.count
      }
      return inner ?? nil
    }
    return (ordered ?? nil) ?? (a < b)
  }

  static func writeString(_ s: String, into out: inout [UInt8]) {
    out.append(0x22)
    // Most strings (addresses, codes) need no escaping: append them whole.
    let plain = s.utf8.withContiguousStorageIfAvailable { bytes in
      for byte in bytes where byte < 0x20 || byte == 0x22 || byte == 0x5C { return false }
      out.append(contentsOf: bytes)
      return true
    }
    if plain == true {
      out.append(0x22)
      return
    }
    for byte in s.utf8 {
      switch byte {
      case 0x22: JSON.writeLiteral("\\\"", into: &out)
      case 0x5C: JSON.writeLiteral("\\\\", into: &out)
      case 0x0A: JSON.writeLiteral("\\n", into: &out)
      case 0x0D: JSON.writeLiteral("\\r", into: &out)
      case 0x09: JSON.writeLiteral("\\t", into: &out)
      case ..<0x20:
        let hex = Array("0123456789abcdef".utf8)
        JSON.writeLiteral("\\u00", into: &out)
        out.append(hex[Int(byte >> 4)])
        out.append(hex[Int(byte & 0xF)])
      default:
        out.append(byte)
      }
    }
    out.append(0x22)
  }
}
