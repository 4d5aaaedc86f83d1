import LBCore

/// Why a JSON text was refused, with the byte offset (0-based) and line (1-based) where.
public struct JSONParseError: LocatedError, Equatable {
  public var path: String?
  public var line: Int?
  /// Byte offset of the problem from the start of the text.
  public var offset: Int
  public var problem: String
  public var category: FailureCategory { .unrecognizedInput }
  public var reason: String { "not valid JSON at byte \(offset): \(problem)" }
  public var hint: String { "give a JSON report written by `lbscope … --format json`" }
}

/// A strict RFC 8259 JSON parser into `JSON`, for reports read back by `lbscope merge`.
///
/// Strict: no comments, trailing commas, leading zeros, `NaN`, unescaped control characters,
/// invalid UTF-8, lone surrogates or duplicate keys; nothing but white space after the value.
/// Bounded: texts over `maximumSize` bytes and nesting deeper than `maximumDepth` are refused
/// before they cost memory or stack. Integers that fit in `Int64` stay integers; other numbers
/// become `Double`.
public struct JSONParser: Sendable {
  public var maximumDepth = 64
  public var maximumSize = 512 << 20

  public init() {}

  /// Parses a whole text. `path` only labels errors.
  public func parse(_ bytes: [UInt8], path: String? = nil) throws(JSONParseError) -> JSON {
    guard bytes.count <= maximumSize else {
      throw JSONParseError(
        path: path, line: nil, offset: maximumSize, problem: "larger than \(maximumSize) bytes")
    }
    var cursor = Cursor(bytes: bytes, maximumDepth: maximumDepth)
    do throws(JSONParseError) {
      cursor.skipSpace()
      let value = try cursor.value(depth: 0)
      cursor.skipSpace()
      if cursor.position < bytes.count { throw cursor.failure("unexpected text after the value") }
      return value
    } catch var error {
      error.path = path
      error.line = 1 + bytes[..<min(error.offset, bytes.count)].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
      throw error
    }
  }

  struct Cursor {
    let bytes: [UInt8]
    let maximumDepth: Int
    var position = 0

    init(bytes: [UInt8], maximumDepth: Int) {
      self.bytes = bytes
      self.maximumDepth = maximumDepth
    }

    func failure(_ problem: String, at offset: Int? = nil) -> JSONParseError {
      JSONParseError(path: nil, line: nil, offset: offset ?? position, problem: problem)
    }

    var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    mutating func skipSpace() {
      while let b = current, b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { position += 1 }
    }

    mutating func expect(_ literal: String, value: JSON) throws(JSONParseError) -> JSON {
      for byte in literal.utf8 {
        guard let b = current else { throw failure("the text ends inside `\(literal)`") }
        guard b == byte else { throw failure("expected `\(literal)`") }
        position += 1
      }
      return value
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSON {
      guard let b = current else { throw failure("the text ends where a value was expected") }
      switch b {
      case 0x7B: return try object(depth: depth + 1)
      case 0x5B: return try array(depth: depth + 1)
      case 0x22: return .string(try string())
      case 0x74: return try expect("true", value: .bool(true))
      case 0x66: return try expect("false", value: .bool(false))
      case 0x6E: return try expect("null", value: .null)
      case 0x2D, 0x30...0x39: return try number()
      default: throw failure("expected a value, found byte 0x\(String(b, radix: 16))")
      }
    }

    mutating func object(depth: Int) throws(JSONParseError) -> JSON {
      guard depth <= maximumDepth else { throw failure("nested deeper than \(maximumDepth) levels") }
      position += 1  // "{"
      var members: [String: JSON] = [:]
      skipSpace()
      if current == 0x7D {
        position += 1
        return .object(members)
      }
      while true {
        skipSpace()
        guard current == 0x22 else {
          throw failure(
            current == nil ? "the text ends inside an object" : "expected a member name in quotes")
        }
        let keyOffset = position
        let key = try string()
        skipSpace()
        guard current == 0x3A else {
          throw failure(current == nil ? "the text ends inside an object" : "expected ':'")
        }
        position += 1
        skipSpace()
        let member = try value(depth: depth)
        guard members.updateValue(member, forKey: key) == nil else {
          throw failure("the member name \"\(key)\" appears twice", at: keyOffset)
        }
        skipSpace()
        switch current {
        case 0x2C: position += 1
        case 0x7D:
          position += 1
          return .object(members)
        case nil: throw failure("the text ends inside an object")
        default: throw failure("expected ',' or '}'")
        }
      }
    }

    mutating func array(depth: Int) throws(JSONParseError) -> JSON {
      guard depth <= maximumDepth else { throw failure("nested deeper than \(maximumDepth) levels") }
      position += 1  // "["
      var items: [JSON] = []
      skipSpace()
      if current == 0x5D {
        position += 1
        return .array(items)
      }
      while true {
        skipSpace()
        items.append(try value(depth: depth))
        skipSpace()
        switch current {
        case 0x2C: position += 1
        case 0x5D:
          position += 1
          return .array(items)
        case nil: throw failure("the text ends inside an array")
        default: throw failure("expected ',' or ']'")
        }
      }
    }

    mutating func string() throws(JSONParseError) -> String {
      let start = position
      position += 1  // opening quote
      var out: [UInt8] = []
      while true {
        guard let b = current else { throw failure("the text ends inside a string", at: start) }
        switch b {
        case 0x22:
          position += 1
          guard let text = String(validating: out, as: UTF8.self) else {
            throw failure("the string is not valid UTF-8", at: start)
          }
          return text
        case 0x5C:
          position += 1
          guard let e = current else { throw failure("the text ends inside a string", at: start) }
          position += 1
          switch e {
          case 0x22, 0x5C, 0x2F: out.append(e)
          case 0x62: out.append(0x08)
          case 0x66: out.append(0x0C)
          case 0x6E: out.append(0x0A)
          case 0x72: out.append(0x0D)
          case 0x74: out.append(0x09)
          case 0x75:
            var scalar = try hex4()
            if scalar >= 0xD800 && scalar < 0xDC00 {
              // A high surrogate must be followed by an escaped low one (RFC 8259 §7).
              guard current == 0x5C, position + 1 < bytes.count, bytes[position + 1] == 0x75 else {
                throw failure("a lone surrogate in \\u escape")
              }
              position += 2
              let low = try hex4()
              guard low >= 0xDC00 && low < 0xE000 else { throw failure("a lone surrogate in \\u escape") }
              scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if scalar >= 0xDC00 && scalar < 0xE000 {
              throw failure("a lone surrogate in \\u escape")
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw failure("an invalid \\u escape") }
            out.append(contentsOf: String(Character(unicode)).utf8)
          default:
            throw failure("an unknown escape \\\(Character(Unicode.Scalar(e)))", at: position - 2)
          }
        case 0..<0x20:
          throw failure("a control character inside a string must be escaped")
        default:
          out.append(b)
          position += 1
        }
      }
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
      var value: UInt32 = 0
      for _ in 0..<4 {
        guard let b = current else { throw failure("the text ends inside a \\u escape") }
        let digit: UInt8
        switch b {
        case 0x30...0x39: digit = b - 0x30
        case 0x61...0x66: digit = b - 0x61 + 10
        case 0x41...0x46: digit = b - 0x41 + 10
        default: throw failure("expected four hex digits after \\u")
        }
        value = value << 4 | UInt32(digit)
        position += 1
      }
      return value
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` (RFC 8259 §6).
    mutating func number() throws(JSONParseError) -> JSON {
      let start = position
      if current == 0x2D { position += 1 }
      guard let first = current, first >= 0x30 && first <= 0x39 else { throw failure("expected a digit") }
      position += 1
      if first == 0x30, let b = current, b >= 0x30 && b <= 0x39 {
        throw failure("a number may not have a leading zero")
      }
      digits()
      var integer = true
      if current == 0x2E {
        integer = false
        position += 1
        guard let b = current, b >= 0x30 && b <= 0x39 else { throw failure("expected a digit after '.'") }
        digits()
      }
      if current == 0x65 || current == 0x45 {
        integer = false
        position += 1
        if current == 0x2B || current == 0x2D { position += 1 }
        guard let b = current, b >= 0x30 && b <= 0x39 else {
          throw failure("expected a digit in the exponent")
        }
        digits()
      }
      let text = String(decoding: bytes[start..<position], as: UTF8.self)
      if integer, let value = Int64(text) { return .int(value) }
      guard let value = Double(text), value.isFinite else {
        throw failure("the number is out of range", at: start)
      }
      return .double(value)
    }

    mutating func digits() {
      while let b = current, b >= 0x30 && b <= 0x39 { position += 1 }
    }
  }
}
