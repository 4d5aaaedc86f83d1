#if canImport(Glibc)
  import Glibc
#endif

/// Byte-level helpers for text parsers (the conntrack and rules readers). Every function takes a
/// buffer that is exactly the token and never reads outside it.
public enum Bytes {
  @inlinable
  public static func equals(_ token: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
    let count = literal.utf8CodeUnitCount
    guard token.count == count, let base = token.baseAddress else { return false }
    return memcmp(base, literal.utf8Start, count) == 0
  }

  @inlinable
  public static func hasPrefix(_ token: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
    let count = literal.utf8CodeUnitCount
    guard token.count >= count, let base = token.baseAddress else { return false }
    return memcmp(base, literal.utf8Start, count) == 0
  }

  /// Finds `literal` anywhere in `haystack`.
  static func contains(_ haystack: UnsafeRawBufferPointer, _ literal: StaticString) -> Bool {
    let count = literal.utf8CodeUnitCount
    guard haystack.count >= count, let base = haystack.baseAddress else { return false }
    return memmemPointer(base, haystack.count, literal.utf8Start, count) != nil
  }

  /// A decimal number of at most 19 digits; `nil` for anything else.
  @inlinable
  public static func decimal(_ token: UnsafeRawBufferPointer) -> UInt64? {
    if token.isEmpty || token.count > 19 { return nil }
    var value: UInt64 = 0
    for byte in token {
      let digit = byte &- 0x30
      if digit > 9 { return nil }
      value = value &* 10 &+ UInt64(digit)
    }
    return value
  }

  @inlinable
  public static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

  /// The text of a token, for messages. Replaces bytes that are not printable ASCII.
  public static func text(_ token: UnsafeRawBufferPointer, limit: Int = 60) -> String {
    var scalars = String.UnicodeScalarView()
    for byte in token.prefix(limit) {
      scalars.append(
        (0x20..<0x7F).contains(byte) ? Unicode.Scalar(byte) : Unicode.Scalar(0x3F as UInt8))
    }
    return String(scalars) + (token.count > limit ? "…" : "")
  }
}

/// The first occurrence of `needle` in `haystack` (glibc's `memmem` is not exported to Swift):
/// `memchr` for the first byte, then `memcmp`.
func memmemPointer(
  _ haystack: UnsafeRawPointer, _ haystackCount: Int, _ needle: UnsafeRawPointer, _ needleCount: Int
) -> UnsafeRawPointer? {
  guard needleCount > 0 else { return haystack }
  guard haystackCount >= needleCount else { return nil }
  let first = Int32(needle.load(as: UInt8.self))
  var offset = 0
  let last = haystackCount - needleCount
  while offset <= last {
    guard let hit = memchr(haystack + offset, first, last - offset + 1) else { return nil }
    let candidate = UnsafeRawPointer(hit)
    if memcmp(candidate, needle, needleCount) == 0 { return candidate }
    offset = haystack.distance(to: candidate) + 1
  }
  return nil
}
