import LBCore

#if canImport(Glibc)
  import Glibc
#endif

/// A fast path for the line shape nearly every line of a real table has:
///
///     [ipv4 2] tcp|udp NUM TIMEOUT [STATE] src= dst= sport= dport= [packets= bytes=] [UNREPLIED]
///         src= dst= sport= dport= [packets= bytes=] [ASSURED] [mark=] [secctx=] [zone=] [use=] [id=]
///
/// with IPv4 addresses: `conntrack -L`, `-o extended` and `/proc/net/nf_conntrack` for TCP and UDP.
/// It decodes such a line in one forward scan, with no token table, and gives up (`nil`) at the
/// first byte that does not fit the shape; `ConntrackLineParser.parse` then decodes the line.
/// Whatever it accepts it decodes exactly as `ConntrackLineParser.parse` does (`ConntrackEntry`
/// equality, checked line by line on every dump in `captures/` and `../shared/corpus` by
/// `CommonLineParserTests`), so the choice of path never shows in a result.
public enum CommonLineParser {
  public static func parse(_ line: UnsafeRawBufferPointer, number: Int) -> ConntrackEntry? {
    guard let base = line.baseAddress else { return nil }
    var c = Cursor(bytes: base.assumingMemoryBound(to: UInt8.self), count: line.count)
    var entry = ConntrackEntry()
    entry.line = number

    // Header: [ipv4 2] proto number timeout [STATE].
    if c.literal("ipv4") {
      guard c.spaces(), c.literal("2"), c.spaces() else { return nil }
    }
    if c.literal("tcp") {
      entry.proto = .tcp
      guard c.spaces(), c.literal("6") else { return nil }
    } else if c.literal("udp") {
      entry.proto = .udp
      guard c.spaces(), c.literal("17") else { return nil }
    } else {
      return nil
    }
    guard c.spaces(), let timeout = c.number(), c.spaces() else { return nil }
    entry.timeout = UInt32(clamping: timeout)
    if let first = c.peek, first &- 0x41 < 26 {  // "A"..."Z": a state name
      guard let state = ConntrackLineParser.connectionState(c.word()), c.spaces() else { return nil }
      entry.state = state
    }

    // The two tuples, with the flags that may stand between and after them.
    guard c.tuple(into: &entry.original) else { return nil }
    if c.literal("[UNREPLIED]") {
      entry.unreplied = true
      guard c.spaces() else { return nil }
    }
    guard c.tuple(into: &entry.reply) else { return nil }
    if c.atEnd { return entry }
    if c.literal("[ASSURED]") {
      entry.assured = true
      guard c.endOrSpaces() else { return nil }
    }

    // Trailing keys.
    while !c.atEnd {
      if c.literal("mark=") {
        guard let value = c.number().flatMap({ UInt32(exactly: $0) }) else { return nil }
        entry.mark = value
      } else if c.literal("use=") {
        guard let value = c.number().flatMap({ UInt32(exactly: $0) }) else { return nil }
        entry.use = value
      } else if c.literal("zone=") {
        guard let value = c.number().flatMap({ UInt16(exactly: $0) }) else { return nil }
        entry.zone = value
      } else if c.literal("id=") {
        guard let value = c.number().flatMap({ UInt32(exactly: $0) }) else { return nil }
        entry.id = value
      } else if c.literal("secctx=") {
        // A bracket or a second "=" would be read differently by the general parser.
        let value = c.word()
        guard !value.contains(where: { $0 == 0x3D || $0 == 0x5B }) else { return nil }
      } else {
        return nil
      }
      guard c.endOrSpaces() else { return nil }
    }
    return entry
  }

  /// A forward reader over one line.
  struct Cursor {
    let bytes: UnsafePointer<UInt8>
    let count: Int
    var i = 0

    var atEnd: Bool { i >= count }
    var peek: UInt8? { i < count ? bytes[i] : nil }

    /// Skips `literal` when the line continues with it.
    @inline(__always)
    mutating func literal(_ literal: StaticString) -> Bool {
      let n = literal.utf8CodeUnitCount
      guard count - i >= n, memcmp(bytes + i, literal.utf8Start, n) == 0 else { return false }
      i += n
      return true
    }

    /// Skips one or more spaces or tabs; `false` when there are none.
    @inline(__always)
    mutating func spaces() -> Bool {
      let start = i
      while i < count && (bytes[i] == 0x20 || bytes[i] == 0x09) { i += 1 }
      return i > start
    }

    /// Skips spaces, or accepts the end of the line.
    @inline(__always)
    mutating func endOrSpaces() -> Bool { atEnd || spaces() }

    /// The bytes up to the next space or the end.
    @inline(__always)
    mutating func word() -> UnsafeRawBufferPointer {
      let start = i
      while i < count && bytes[i] != 0x20 && bytes[i] != 0x09 { i += 1 }
      return UnsafeRawBufferPointer(start: bytes + start, count: i - start)
    }

    /// A decimal number ending at a space or the end of the line, as `Bytes.decimal` reads it.
    @inline(__always)
    mutating func number() -> UInt64? {
      let start = i
      var value: UInt64 = 0
      while i < count {
        let digit = bytes[i] &- 0x30
        if digit > 9 { break }
        value = value &* 10 &+ UInt64(digit)
        i += 1
      }
      let digits = i - start
      guard digits > 0, digits <= 19, atEnd || bytes[i] == 0x20 || bytes[i] == 0x09 else { return nil }
      return value
    }

    /// A port: a number below 65536.
    @inline(__always)
    mutating func port() -> UInt16? { number().flatMap { UInt16(exactly: $0) } }

    /// A dotted-quad IPv4 address ending at a space, as `IPAddress.parse` reads it.
    @inline(__always)
    mutating func ipv4() -> IPAddress? {
      // In one pass: four octets of one to three digits, each at most 255, then a space or
      // the end (what `IPv4Address.parse` accepts, token by token).
      var value: UInt32 = 0
      for octetNumber in 0..<4 {
        var octet: UInt32 = 0
        var digits = 0
        while i < count, bytes[i] &- 0x30 < 10 {
          octet = octet &* 10 &+ UInt32(bytes[i] &- 0x30)
          digits += 1
          i += 1
          if digits > 3 || octet > 255 { return nil }
        }
        guard digits > 0 else { return nil }
        value = value << 8 | octet
        if octetNumber < 3 {
          guard i < count, bytes[i] == 0x2E else { return nil }
          i += 1
        }
      }
      guard atEnd || bytes[i] == 0x20 || bytes[i] == 0x09 else { return nil }
      return .v4(IPv4Address(value))
    }

    /// `src= dst= sport= dport= [packets= bytes=]` and the spaces after it (a tuple never ends
    /// a line).
    @inline(__always)
    mutating func tuple(into tuple: inout ConntrackTuple) -> Bool {
      guard literal("src="), let source = ipv4(), spaces(),
        literal("dst="), let destination = ipv4(), spaces(),
        literal("sport="), let sourcePort = port(), spaces(),
        literal("dport="), let destinationPort = port(), spaces()
      else { return false }
      tuple.source = source
      tuple.destination = destination
      tuple.sourcePort = sourcePort
      tuple.destinationPort = destinationPort
      if literal("packets=") {
        guard let packets = number(), spaces(), literal("bytes="), let bytes = number(), spaces()
        else { return false }
        tuple.packets = packets
        tuple.bytes = bytes
      }
      return true
    }
  }
}
