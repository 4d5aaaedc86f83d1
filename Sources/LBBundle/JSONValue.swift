import LBReport

/// A small JSON parser (RFC 8259) for the bundle's own `manifest.json`, into `LBReport.JSON`.
/// Depth is capped; anything it does not understand is `nil`, never a trap.
struct JSONParser {
  let bytes: [UInt8]
  var index = 0
  static let maxDepth = 32

  static func parse(_ bytes: [UInt8]) -> JSON? {
    var parser = JSONParser(bytes: bytes)
    guard let value = parser.value(depth: 0) else { return nil }
    parser.skipSpace()
    return parser.index == bytes.count ? value : nil
  }

  mutating func skipSpace() {
    while index < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[index]) { index += 1 }
  }

  mutating func literal(_ text: String) -> Bool {
    let word = Array(text.utf8)
    guard index + word.count <= bytes.count, Array(bytes[index..<(index + word.count)]) == word else {
      return false
    }
    index += word.count
    return true
  }

  mutating func value(depth: Int) -> JSON? {
    guard depth < Self.maxDepth else { return nil }
    skipSpace()
    guard index < bytes.count else { return nil }
    switch bytes[index] {
    case 0x7B:  // {
      index += 1
      var members: [String: JSON] = [:]
      skipSpace()
      if index < bytes.count, bytes[index] == 0x7D {
        index += 1
        return .object(members)
      }
      while true {
        skipSpace()
        guard let key = string() else { return nil }
        skipSpace()
        guard index < bytes.count, bytes[index] == 0x3A else { return nil }
        index += 1
        guard let member = value(depth: depth + 1) else { return nil }
        members[key] = member
        skipSpace()
        guard index < bytes.count else { return nil }
        if bytes[index] == 0x2C {
          index += 1
          continue
        }
        guard bytes[index] == 0x7D else { return nil }
        index += 1
        return .object(members)
      }
    case 0x5B:  // [
      index += 1
      var items: [JSON] = []
      skipSpace()
      if index < bytes.count, bytes[index] == 0x5D {
        index += 1
        return .array(items)
      }
      while true {
        guard let item = value(depth: depth + 1) else { return nil }
        items.append(item)
        skipSpace()
        guard index < bytes.count else { return nil }
        if bytes[index] == 0x2C {
          index += 1
          continue
        }
        guard bytes[index] == 0x5D else { return nil }
        index += 1
        return .array(items)
      }
    case 0x22:
      return string().map(JSON.string)
    case 0x74: return literal("true") ? .bool(true) : nil
    case 0x66: return literal("false") ? .bool(false) : nil
    case 0x6E: return literal("null") ? .null : nil
    default:
      let start = index
      while index < bytes.count,
        (0x30...0x39).contains(bytes[index]) || [0x2D, 0x2B, 0x2E, 0x65, 0x45].contains(bytes[index])
      {
        index += 1
      }
      let text = String(decoding: bytes[start..<index], as: UTF8.self)
      if let integer = Int64(text) { return .int(integer) }
      if let double = Double(text), double.isFinite { return .double(double) }
      return nil
    }
  }

  mutating func string() -> String? {
    guard index < bytes.count, bytes[index] == 0x22 else { return nil }
    index += 1
    var out: [UInt8] = []
    while index < bytes.count {
      let byte = bytes[index]
      index += 1
      switch byte {
      case 0x22: return String(decoding: out, as: UTF8.self)
      case 0x5C:
        guard index < bytes.count else { return nil }
        let escape = bytes[index]
        index += 1
        switch escape {
        case 0x22, 0x5C, 0x2F: out.append(escape)
        case 0x62: out.append(0x08)
        case 0x66: out.append(0x0C)
        case 0x6E: out.append(0x0A)
        case 0x72: out.append(0x0D)
        case 0x74: out.append(0x09)
        case 0x75:
          guard index + 4 <= bytes.count,
            let code = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16)
          else { return nil }
          index += 4
          // Surrogates are not used in manifests; they become U+FFFD.
          let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
          out.append(contentsOf: Array(String(Character(scalar)).utf8))
        default: return nil
        }
      default:
        guard byte >= 0x20 else { return nil }
        out.append(byte)
      }
    }
    return nil
  }
}
