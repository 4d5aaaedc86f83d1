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
