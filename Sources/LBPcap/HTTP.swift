#if canImport(Glibc)
  import Glibc
#endif

/// Plaintext HTTP/1.x recognition (RFC 9112 §3: a request line starts with a method token and
/// a space). Only counts; bodies are not parsed, so a body that happens to hold a request line
/// after a blank line can be over-counted.
enum HTTP {
  /// Requests that start in this segment: at its start, and after each `\r\n\r\n` (pipelined
  /// requests without bodies).
  @inline(__always)
  static func requestCount(_ payload: ByteView) -> UInt32 {
    guard let first = payload.u8(0), first >= UInt8(ascii: "A"), first <= UInt8(ascii: "Z") else {
      return 0
    }
    var n: UInt32 = startsWithMethod(payload, at: 0) ? 1 : 0
    guard n == 1 else { return 0 }
    // Find each "\r" with memchr, then check for "\r\n\r\n" and a method after it.
    let raw = payload.rawBuffer
    guard let base = raw.baseAddress else { return n }
    var i = 0
    while i + 4 < raw.count, let found = memchr(base + i, 0x0D, raw.count - i) {
      let at = base.distance(to: UnsafeRawPointer(found))
      if payload.u32(at) == 0x0D0A_0D0A, startsWithMethod(payload, at: at + 4) { n += 1 }
      i = at + 1
    }
    return n
  }

  static func startsWithMethod(_ p: ByteView, at i: Int) -> Bool {
    guard let c = p.u8(i) else { return false }
    switch c {
    case UInt8(ascii: "G"): return p.matches("GET ", at: i)
    case UInt8(ascii: "P"):
      return p.matches("POST ", at: i) || p.matches("PUT ", at: i) || p.matches("PATCH ", at: i)
    case UInt8(ascii: "H"): return p.matches("HEAD ", at: i)
    case UInt8(ascii: "D"): return p.matches("DELETE ", at: i)
    case UInt8(ascii: "O"): return p.matches("OPTIONS ", at: i)
    case UInt8(ascii: "C"): return p.matches("CONNECT ", at: i)
    case UInt8(ascii: "T"): return p.matches("TRACE ", at: i)
    default: return false
    }
  }
}

/// Header fields of one HTTP/1.x message head (RFC 9110 §5, RFC 9112 §5), read in place from
/// the first segment: names compared case-insensitively, values as byte ranges of the payload.
extension HTTP {
  /// The header fields host and affinity evidence use.
  enum Field {
    case xForwardedFor, forwarded, xRealIP, userAgent, cookie, setCookie, other
  }

  /// Calls `body(field, valueStart, valueEnd)` for each header line of the head that starts the
  /// payload, until the blank line or the end of the segment (a head split over segments is read
  /// as far as it goes).
  static func headers(_ p: ByteView, _ body: (Field, Int, Int) -> Void) {
    let raw = p.rawBuffer
    guard let base = raw.baseAddress else { return }
    let count = raw.count
    // Skip the start line.
    guard var line = nextLine(raw, base, from: 0) else { return }
    while line < count {
      guard let end = lineEnd(raw, base, from: line) else { return }
      if end == line { return }  // blank line: end of the head
      var colon = line
      while colon < end, p.u8(colon) != UInt8(ascii: ":") { colon += 1 }
      if colon < end { body(field(p, line, colon), colon + 1, end) }
      line = end + 2
    }
  }

  /// Offset of the "\r\n" ending the line that starts at `from`, nil when the segment ends first.
  static func lineEnd(_ raw: UnsafeRawBufferPointer, _ base: UnsafeRawPointer, from: Int) -> Int? {
    guard from < raw.count, let found = memchr(base + from, 0x0D, raw.count - from) else { return nil }
    let at = base.distance(to: UnsafeRawPointer(found))
    return at + 1 < raw.count && raw[at + 1] == 0x0A ? at : nil
  }

  static func nextLine(_ raw: UnsafeRawBufferPointer, _ base: UnsafeRawPointer, from: Int) -> Int? {
    lineEnd(raw, base, from: from).map { $0 + 2 }
  }

  static func field(_ p: ByteView, _ start: Int, _ end: Int) -> Field {
    switch end - start {
    case 15 where equalsLowercased(p, start, "x-forwarded-for"): return .xForwardedFor
    case 9 where equalsLowercased(p, start, "forwarded"): return .forwarded
    case 9 where equalsLowercased(p, start, "x-real-ip"): return .xRealIP
    case 10 where equalsLowercased(p, start, "user-agent"): return .userAgent
    case 6 where equalsLowercased(p, start, "cookie"): return .cookie
    case 10 where equalsLowercased(p, start, "set-cookie"): return .setCookie
    default: return .other
    }
  }

  /// Whether the bytes at `start`, lower-cased (ASCII), equal `literal` (lower case).
  static func equalsLowercased(_ p: ByteView, _ start: Int, _ literal: StaticString) -> Bool {
    let n = literal.utf8CodeUnitCount
    let l = literal.utf8Start
    for k in 0..<n {
      guard var c = p.u8(start + k) else { return false }
      if c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") { c |= 0x20 }
      if c != l[k] { return false }
    }
    return true
  }

  /// `start..<end` without surrounding spaces, tabs and double quotes.
  static func trimmed(_ p: ByteView, _ start: Int, _ end: Int) -> (Int, Int) {
    var s = start
    var e = end
    func blank(_ c: UInt8?) -> Bool { c == 0x20 || c == 0x09 || c == 0x22 }
    while s < e, blank(p.u8(s)) { s += 1 }
    while e > s, blank(p.u8(e - 1)) { e -= 1 }
    return (s, e)
  }

  /// End of the first comma-separated element of a value.
  static func firstListElementEnd(_ p: ByteView, _ start: Int, _ end: Int) -> Int {
    var i = start
    while i < end, p.u8(i) != UInt8(ascii: ",") { i += 1 }
    return i
  }

  /// The `for=` parameter of a `Forwarded` element (RFC 7239 §4), without quotes.
  static func forwardedFor(_ p: ByteView, _ start: Int, _ end: Int) -> (Int, Int)? {
    var i = start
    while i < end {
      var pairEnd = i
      while pairEnd < end, p.u8(pairEnd) != UInt8(ascii: ";") { pairEnd += 1 }
      let pair = trimmed(p, i, pairEnd)
      if pair.1 - pair.0 > 4, equalsLowercased(p, pair.0, "for=") {
        let value = trimmed(p, pair.0 + 4, pair.1)
        return value.1 > value.0 ? value : nil
      }
      i = pairEnd + 1
    }
    return nil
  }

  /// FNV-1a over `start..<end`.
  static func hash(_ p: ByteView, _ start: Int, _ end: Int) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    var i = start
    while i < end, let c = p.u8(i) {
      h = (h ^ UInt64(c)) &* 0x100_0000_01B3
      i += 1
    }
    return h
  }

  /// Calls `body(nameStart, nameEnd, valueStart, valueEnd)` for each `name=value` pair of a
  /// `Cookie` value (RFC 6265 §4.2: pairs separated by `;`), or only the first pair of a
  /// `Set-Cookie` value (the rest are attributes, §4.1).
  static func cookiePairs(
    _ p: ByteView, _ start: Int, _ end: Int, firstOnly: Bool, _ body: (Int, Int, Int, Int) -> Void
  ) {
    var i = start
    while i < end {
      var pairEnd = i
      while pairEnd < end, p.u8(pairEnd) != UInt8(ascii: ";") { pairEnd += 1 }
      let pair = trimmed(p, i, pairEnd)
      var equals = pair.0
      while equals < pair.1, p.u8(equals) != UInt8(ascii: "=") { equals += 1 }
      if equals < pair.1 && equals > pair.0 {
        let name = trimmed(p, pair.0, equals)
        let value = trimmed(p, equals + 1, pair.1)
        if value.1 > value.0 { body(name.0, name.1, value.0, value.1) }
      }
      if firstOnly { return }
      i = pairEnd + 1
    }
  }
}
