import LBConntrack
import LBCore

#if canImport(Glibc)
  import Glibc
#endif

/// A token of a rule line: a byte range of the line, with the quotes of a quoted word removed.
/// Valid only while the line's buffer is.
struct Token {
  var bytes: UnsafeRawBufferPointer
  /// True when the word was written in double quotes (then it may contain spaces or escapes).
  var quoted: Bool

  @inline(__always) func equals(_ literal: StaticString) -> Bool { RuleText.equals(bytes, literal) }
  @inline(__always) func hasPrefix(_ literal: StaticString) -> Bool { RuleText.hasPrefix(bytes, literal) }
  var first: UInt8? { bytes.first }
  var string: String { RuleText.string(bytes, unescape: quoted) }
}

/// Byte helpers for the rules readers. Every function takes a buffer that is exactly the token
/// and never reads outside it.
enum RuleText {
  // The general byte helpers are LBConntrack's `Bytes`; these names keep the rules readers short.
  @inline(__always)
  static func equals(_ token: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
    Bytes.equals(token, literal)
  }

  @inline(__always)
  static func hasPrefix(_ token: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
    Bytes.hasPrefix(token, literal)
  }

  @inline(__always) static func isSpace(_ byte: UInt8) -> Bool { Bytes.isSpace(byte) }

  /// A decimal number of at most 19 digits; `nil` for anything else.
  @inline(__always)
  static func decimal(_ token: UnsafeRawBufferPointer) -> UInt64? { Bytes.decimal(token) }

  /// `0x4000` or `16384`.
  static func number32(_ token: UnsafeRawBufferPointer) -> UInt32? {
    if hasPrefix(token, "0x") || hasPrefix(token, "0X") {
      let digits = UnsafeRawBufferPointer(rebasing: token.dropFirst(2))
      guard !digits.isEmpty, digits.count <= 8 else { return nil }
      var value: UInt32 = 0
      for byte in digits {
        let nibble: UInt8
        switch byte {
        case 0x30...0x39: nibble = byte - 0x30
        case 0x61...0x66: nibble = byte - 0x61 + 10
        case 0x41...0x46: nibble = byte - 0x41 + 10
        default: return nil
        }
        value = value << 4 | UInt32(nibble)
      }
      return value
    }
    guard let value = decimal(token), value <= UInt64(UInt32.max) else { return nil }
    return UInt32(value)
  }

  /// A non-negative decimal fraction such as `0.33333333349`, and how many decimals it was
  /// written with. Exponents and signs are not part of what iptables prints.
  static func fraction(_ token: UnsafeRawBufferPointer) -> (value: Double, decimals: Int)? {
    guard let dot = token.firstIndex(of: 0x2E) else {
      return decimal(token).map { (Double($0), 0) }
    }
    let whole = UnsafeRawBufferPointer(rebasing: token[token.startIndex..<dot])
    let part = UnsafeRawBufferPointer(rebasing: token[(dot + 1)...])
    guard let w = whole.isEmpty ? 0 : decimal(whole), !part.isEmpty, part.count <= 18,
      let f = decimal(part)
    else { return nil }
    var scale = 1.0
    for _ in 0..<part.count { scale *= 10 }
    return (Double(w) + Double(f) / scale, part.count)
  }

  /// The text of a token; with `unescape`, `\"` and `\\` become `"` and `\`.
  static func string(_ token: UnsafeRawBufferPointer, unescape: Bool = false) -> String {
    if !unescape || !token.contains(0x5C) { return String(decoding: token, as: UTF8.self) }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(token.count)
    var escaped = false
    for byte in token {
      if !escaped && byte == 0x5C {
        escaped = true
        continue
      }
      escaped = false
      bytes.append(byte)
    }
    return String(decoding: bytes, as: UTF8.self)
  }

  /// The text of a token for messages: printable ASCII only, cut at `limit`.
  static func excerpt(_ token: UnsafeRawBufferPointer, limit: Int = 60) -> String {
    Bytes.text(token, limit: limit)
  }

  /// Splits a line into words: spaces separate, a word in double quotes may hold spaces and
  /// `\"`. Returns `nil` when a quote is never closed (a cut line). Reuses `tokens`.
  static func split(_ line: UnsafeRawBufferPointer, into tokens: inout [Token]) -> Bool {
    tokens.removeAll(keepingCapacity: true)
    guard let base = line.baseAddress else { return true }
    var i = 0
    let n = line.count
    while i < n {
      while i < n && isSpace(line[i]) { i += 1 }
      if i >= n { break }
      if line[i] == 0x22 {  // "
        let start = i + 1
        var j = start
        var closed = false
        while j < n {
          if line[j] == 0x5C && j + 1 < n {
            j += 2
            continue
          }
          if line[j] == 0x22 {
            closed = true
            break
          }
          j += 1
        }
        if !closed { return false }
        tokens.append(
          Token(bytes: UnsafeRawBufferPointer(start: base + start, count: j - start), quoted: true))
        i = j + 1
      } else {
        let start = i
        while i < n && !isSpace(line[i]) { i += 1 }
        tokens.append(
          Token(bytes: UnsafeRawBufferPointer(start: base + start, count: i - start), quoted: false))
      }
    }
    return true
  }
}

/// An address with a prefix length, as `-s`/`-d` match it.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
  public var address: IPAddress
  /// Prefix length in bits (0…32 or 0…128).
  public var length: UInt8

  public init(address: IPAddress, length: Int) {
    self.address = address
    self.length = UInt8(clamping: length)
  }

  /// True when the prefix names exactly one address (`/32`, `/128`).
  public var isHost: Bool { length == (address.isIPv6 ? 128 : 32) }

  public var description: String { isHost ? address.description : "\(address)/\(length)" }

  /// Whether `other` lies inside the prefix (always false across address families).
  public func contains(_ other: IPAddress) -> Bool {
    switch (address, other) {
    case (.v4(let a), .v4(let b)):
      let length = Int(self.length)
      if length <= 0 { return true }
      let mask: UInt32 = length >= 32 ? .max : ~(UInt32.max >> UInt32(length))
      return a.value & mask == b.value & mask
    case (.v6(let a), .v6(let b)):
      let length = Int(self.length)
      if length <= 0 { return true }
      if length <= 64 {
        let mask: UInt64 = length >= 64 ? .max : ~(UInt64.max >> UInt64(length))
        return a.high & mask == b.high & mask
      }
      let low = length - 64
      let mask: UInt64 = low >= 64 ? .max : ~(UInt64.max >> UInt64(low))
      return a.high == b.high && a.low & mask == b.low & mask
    default:
      return false
    }
  }

  /// `10.0.0.0/8`, `10.0.0.1` (a host), `fd00::/64`, `10.0.0.0/255.0.0.0`.
  static func parse(_ token: UnsafeRawBufferPointer) -> IPPrefix? {
    guard let slash = token.firstIndex(of: 0x2F) else {
      guard let address = IPAddress.parse(token) else { return nil }
      return IPPrefix(address: address, length: address.isIPv6 ? 128 : 32)
    }
    let head = UnsafeRawBufferPointer(rebasing: token[token.startIndex..<slash])
    let tail = UnsafeRawBufferPointer(rebasing: token[(slash + 1)...])
    guard let address = IPAddress.parse(head) else { return nil }
    let maximum = address.isIPv6 ? 128 : 32
    if let bits = RuleText.decimal(tail) {
      guard bits <= UInt64(maximum) else { return nil }
      return IPPrefix(address: address, length: Int(bits))
    }
    // A dotted mask, as older iptables printed it.
    guard case .v4(let mask)? = IPAddress.parse(tail) else { return nil }
    let ones = mask.value.leadingZeroBitCount == 0 ? (~mask.value).leadingZeroBitCount : 0
    guard mask.value == 0 || mask.value == ~(UInt32.max >> UInt32(ones)) else { return nil }
    return IPPrefix(address: address, length: mask.value == 0 ? 0 : ones)
  }
}
