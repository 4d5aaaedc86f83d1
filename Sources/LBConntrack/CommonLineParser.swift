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
/// It decodes such a line in one forward scan, with no token table, straight into an
/// `IPv4Observation`, and gives up (`false`, `nil`) at the first byte that does not fit the shape;
/// `ConntrackLineParser.parse` then decodes the line. Whatever it accepts, the general parser
/// takes as a clean entry whose observation is the same (checked line by line on every dump in
/// `captures/` and `../shared/corpus`, and on damaged copies of them, by `CommonLineParserTests`;
/// and by the `conntrack-line` fuzz target), so the choice of path never shows in a result.
/// Fields no observation carries (timeout, `use=`, `id=`, `secctx=`) are checked, not kept.
public enum CommonLineParser {
  /// Decodes `line` into `slot`; `false` (and `slot` unspecified) when the line is not of the
  /// common shape.
  /// `memo`, when given, remembers the frontend and backend addresses of earlier lines (of one
  /// thread), so that their text is looked up instead of parsed.
  @inline(__always)
  public static func parse(
    _ line: UnsafeRawBufferPointer, number: Int, into slot: UnsafeMutablePointer<IPv4Observation>,
    memo: AddressMemo? = nil
  ) -> Bool {
    guard let base = line.baseAddress else { return false }
    var c = Cursor(bytes: base.assumingMemoryBound(to: UInt8.self), count: line.count, memo: memo?.entries)
    var entry = IPv4Observation()
    entry.line = number
    entry.flags = .replied

    // Header: [ipv4 2] proto number timeout [STATE]. `conntrack -L` pads "tcp" to the width of
    // its longest name: "tcp      6 " is taken in one compare (what the chain below reads too).
    if c.count >= 16 && UnsafeRawPointer(c.bytes).loadUnaligned(as: UInt64.self) == Cursor.tcpHead
      && c.bytes[8] == 0x20 && c.bytes[9] == 0x36  // " 6"
    {
      entry.proto = .tcp
      c.i = 10
    } else {
      if c.literal("ipv4") {
        guard c.spaces(), c.literal("2"), c.spaces() else { return false }
      }
      if c.literal("tcp") {
        entry.proto = .tcp
        guard c.spaces(), c.literal("6") else { return false }
      } else if c.literal("udp") {
        entry.proto = .udp
        guard c.spaces(), c.literal("17") else { return false }
      } else {
        return false
      }
    }
    guard c.spaces(), c.number() != nil, c.spaces() else { return false }
    if let first = c.peek, first &- 0x41 < 26 {  // "A"..."Z": a state name
      guard let state = c.state(), c.spaces() else { return false }
      entry.stateCode = state.rawValue
    }

    // The two tuples, with the flags that may stand between and after them. The reply tuple
    // reversed is the translated one.
    guard
      c.tuple(
        &entry.originalSource, &entry.originalDestination, &entry.originalSourcePort,
        &entry.originalDestinationPort, &entry.originalPackets, &entry.originalBytes,
        rememberedDestination: true)
    else { return false }
    if c.lastHadCounters { entry.flags.insert(.originalCounters) }
    if c.literal("[UNREPLIED]") {
      entry.flags.remove(.replied)
      guard c.spaces() else { return false }
    }
    guard
      c.tuple(
        &entry.translatedDestination, &entry.translatedSource, &entry.translatedDestinationPort,
        &entry.translatedSourcePort, &entry.replyPackets, &entry.replyBytes, rememberedSource: true,
        destinationRepeatsSource: true)
    else { return false }
    if c.lastHadCounters { entry.flags.insert(.replyCounters) }
    if !c.atEnd {
      if c.literal("[ASSURED]") {
        entry.flags.insert(.assured)
        guard c.endOrSpaces() else { return false }
      }

      // Trailing keys.
      while !c.atEnd {
        if c.literal("mark=") {
          guard let value = c.number().flatMap({ UInt32(exactly: $0) }) else { return false }
          entry.mark = value
          entry.flags.insert(.mark)
        } else if c.literal("use=") {
          guard c.number().flatMap({ UInt32(exactly: $0) }) != nil else { return false }
        } else if c.literal("zone=") {
          guard let value = c.number().flatMap({ UInt16(exactly: $0) }) else { return false }
          entry.zone = value
          entry.flags.insert(.zone)
        } else if c.literal("id=") {
          guard c.number().flatMap({ UInt32(exactly: $0) }) != nil else { return false }
        } else if c.literal("secctx=") {
          // A bracket or a second "=" would be read differently by the general parser.
          let value = c.word()
          guard !value.contains(where: { $0 == 0x3D || $0 == 0x5B }) else { return false }
        } else {
          return false
        }
        guard c.endOrSpaces() else { return false }
      }
    }
    slot.pointee = entry
    return true
  }

  /// `line` as an `IPv4Observation`, or `nil` when it is not of the common shape.
  public static func parse(_ line: UnsafeRawBufferPointer, number: Int, memo: AddressMemo? = nil)
    -> IPv4Observation?
  {
    var entry = IPv4Observation()
    return parse(line, number: number, into: &entry, memo: memo) ? entry : nil
  }

  /// A forward reader over one line.
  struct Cursor {
    let bytes: UnsafePointer<UInt8>
    let count: Int
    var i = 0
    /// `AddressMemo.entries`, when there is a memo.
    let memo: UnsafeMutablePointer<AddressMemo.Entry>?

    init(bytes: UnsafePointer<UInt8>, count: Int, memo: UnsafeMutablePointer<AddressMemo.Entry>? = nil) {
      self.bytes = bytes
      self.count = count
      self.memo = memo
    }

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
      // With eight bytes left, the digits of a number shorter than eight are found and
      // converted at once, without a branch per digit.
      if count - i > 8 {
        let run = Cursor.digitRun(UnsafeRawPointer(bytes + i).loadUnaligned(as: UInt64.self))
        if run.length < 8 {
          let after = bytes[i + run.length]
          guard run.length > 0, after == 0x20 || after == 0x09 else { return nil }
          i += run.length
          return run.value
        }
      }
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

    /// The run of decimal digits that starts `word` (eight bytes as loaded, the first one
    /// lowest): its length, 0 to 8, and, when shorter than 8, its value. SWAR: each byte is
    /// tested and the digits converted in the word's lanes (the conversion of Lemire, "Parsing
    /// series of integers with SIMD", 2018, also used by simdjson and fast_float).
    @inline(__always)
    static func digitRun(_ word: UInt64) -> (length: Int, value: UInt64) {
      let ones: UInt64 = 0x0101_0101_0101_0101
      let x = word ^ (ones &* 0x30)  // digits become 0…9
      // A lane's top bit is set unless its byte is below 10 (no carry leaves a lane: at most
      // 0x7F + 0x76).
      let above9 = (((x & (ones &* 0x7F)) &+ (ones &* 0x76)) | x) & (ones &* 0x80)
      let length = above9.trailingZeroBitCount >> 3
      guard length > 0 && length < 8 else { return (length, 0) }
      // The digits moved to the top lanes, zeros below: an eight-digit number with leading
      // zeros, read most significant lane first.
      var y = (x << UInt64((8 - length) * 8)) & (ones &* 0x0F)
      y = (y &* 2561) >> 8
      y = ((y & 0x00FF_00FF_00FF_00FF) &* 6_553_601) >> 16
      y = ((y & 0x0000_FFFF_0000_FFFF) &* 42_949_672_960_001) >> 32
      return (length, y)
    }

    /// A port: a number below 65536.
    @inline(__always)
    mutating func port() -> UInt16? { number().flatMap { UInt16(exactly: $0) } }

    /// A dotted-quad IPv4 address ending at a space, as `IPAddress.parse` reads it.
    @inline(__always)
    mutating func ipv4() -> UInt32? {
      // "255.255.255.255 " is 16 bytes: with that many left, no octet needs a bounds check.
      if count - i >= 16 {
        guard let a = octet(), bytes[i] == 0x2E else { return nil }
        i += 1
        guard let b = octet(), bytes[i] == 0x2E else { return nil }
        i += 1
        guard let c = octet(), bytes[i] == 0x2E else { return nil }
        i += 1
        guard let d = octet(), bytes[i] == 0x20 || bytes[i] == 0x09 else { return nil }
        return a << 24 | b << 16 | c << 8 | d
      }
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
      return value
    }

    /// `ipv4()` through the memo: an address text seen before (with the space or tab after it)
    /// is found by its bytes; one not seen is parsed and remembered.
    @inline(__always)
    mutating func rememberedIPv4() -> UInt32? {
      guard let memo, count - i >= 16 else { return ipv4() }
      let here = UnsafeRawPointer(bytes + i)
      let head = here.loadUnaligned(as: UInt64.self)
      let tail = here.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
      // The text's length: up to the first space or tab (an address is 7 to 15 bytes).
      let inHead = AddressMemo.separators(head)
      let inTail = AddressMemo.separators(tail)
      let length = inHead != 0 ? inHead.trailingZeroBitCount >> 3 : 8 + inTail.trailingZeroBitCount >> 3
      guard length >= 7 && length <= 15 else { return ipv4() }
      // The text and its separator, the rest of the 16 bytes cleared: the key.
      // (Seven bytes and the separator fill the head.)
      let keyHead = head
      let keyTail = length >= 8 ? tail & (UInt64.max >> UInt64((15 - length) * 8)) : 0
      let slot = memo + AddressMemo.slot(keyHead, keyTail)
      if slot.pointee.head == keyHead && slot.pointee.tail == keyTail {
        i += length
        return slot.pointee.value
      }
      guard let value = ipv4() else { return nil }
      slot.pointee = AddressMemo.Entry(head: keyHead, tail: keyTail, value: value)
      return value
    }

    /// One to three digits worth at most 255, not followed by a fourth digit; at least four
    /// bytes must be left.
    @inline(__always)
    mutating func octet() -> UInt32? {
      let word = UnsafeRawPointer(bytes + i).loadUnaligned(as: UInt32.self)
      let ones: UInt32 = 0x0101_0101
      let x = word ^ (ones &* 0x30)
      let above9 = (((x & (ones &* 0x7F)) &+ (ones &* 0x76)) | x) & (ones &* 0x80)
      let length = above9.trailingZeroBitCount >> 3
      guard length > 0 && length < 4 else { return nil }
      let y = x << UInt32((4 - length) * 8)  // the digits in the top lanes
      let value = (y >> 8 & 0xFF) &* 100 &+ (y >> 16 & 0xFF) &* 10 &+ (y >> 24)
      guard value <= 255 else { return nil }
      i += length
      return value
    }

    /// Whether the last `tuple` had `packets=` and `bytes=`.
    var lastHadCounters = false

    /// The text of the last tuple's source address: where it starts, its length, its value.
    var lastSource = (start: 0, length: 0, value: UInt32(0))

    /// The address `earlier` (a `lastSource`) again when the line continues with the same text
    /// and a space or tab: its value without parsing it again; `nil` when the text differs
    /// (then `ipv4()` decides).
    @inline(__always)
    mutating func repeated(_ earlier: (start: Int, length: Int, value: UInt32)) -> UInt32? {
      // Both texts with the byte after them fit in 16 bytes ("255.255.255.255 "): compared as
      // their first and their last eight bytes (which overlap), with 16 bytes left here and
      // the earlier text 16 bytes or more before.
      let (start, length, value) = earlier
      guard length >= 7, count - i >= 16, start + 16 <= i else { return nil }
      let here = UnsafeRawPointer(bytes + i)
      let there = UnsafeRawPointer(bytes + start)
      guard here.loadUnaligned(as: UInt64.self) == there.loadUnaligned(as: UInt64.self),
        here.loadUnaligned(fromByteOffset: length - 7, as: UInt64.self)
          == there.loadUnaligned(fromByteOffset: length - 7, as: UInt64.self)
      else { return nil }
      i += length
      return value
    }

    /// `src= dst= sport= dport= [packets= bytes=]` and the spaces after it (a tuple never ends
    /// a line). `remembered` addresses go through the memo (`rememberedIPv4`); with
    /// `destinationRepeatsSource`, the destination is first compared with the last tuple's
    /// source.
    @inline(__always)
    mutating func tuple(
      _ source: inout UInt32, _ destination: inout UInt32, _ sourcePort: inout UInt16,
      _ destinationPort: inout UInt16, _ packets: inout UInt64, _ bytes: inout UInt64,
      rememberedSource: Bool = false, rememberedDestination: Bool = false,
      destinationRepeatsSource: Bool = false
    ) -> Bool {
      let earlier = lastSource
      guard literal("src=") else { return false }
      let sourceStart = i
      guard let s = rememberedSource ? rememberedIPv4() : ipv4() else { return false }
      lastSource = (sourceStart, i - sourceStart, s)
      // The reply's destination is nearly always the original source again (no SNAT).
      guard spaces(), literal("dst="),
        let d = (destinationRepeatsSource ? repeated(earlier) : nil)
          ?? (rememberedDestination ? rememberedIPv4() : ipv4()), spaces(),
        literal("sport="), let sp = port(), spaces(),
        literal("dport="), let dp = port(), spaces()
      else { return false }
      source = s
      destination = d
      sourcePort = sp
      destinationPort = dp
      lastHadCounters = false
      if literal("packets=") {
        guard let p = number(), spaces(), literal("bytes="), let b = number(), spaces()
        else { return false }
        packets = p
        bytes = b
        lastHadCounters = true
      }
      return true
    }

    /// A state name ending at a space or the end, as `ConntrackLineParser.connectionState`
    /// reads it.
    @inline(__always)
    mutating func state() -> ConnectionState? {
      // The two states nearly every TCP entry has, by their first eight bytes.
      if count - i >= 12 {
        let head = UnsafeRawPointer(bytes + i).loadUnaligned(as: UInt64.self)
        let after: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        if head == Cursor.establishedHead && bytes[i + 8] == 0x48 && bytes[i + 9] == 0x45
          && bytes[i + 10] == 0x44 && after(bytes[i + 11])
        {
          i += 11  // "ESTABLIS" "HED"
          return .established
        }
        if head == Cursor.timeWaitHead && bytes[i + 8] == 0x54 && after(bytes[i + 9]) {
          i += 9  // "TIME_WAI" "T"
          return .timeWait
        }
      }
      return ConntrackLineParser.connectionState(word())
    }

    /// "tcp" and five spaces as a little-endian word.
    static let tcpHead: UInt64 = 0x2020_2020_2070_6374

    /// "ESTABLIS" and "TIME_WAI" as little-endian words.
    static let establishedHead: UInt64 = 0x5349_4C42_4154_5345
    static let timeWaitHead: UInt64 = 0x4941_575F_454D_4954
  }
}

/// Address texts a conntrack table repeats on line after line (its Service frontends and their
/// backends) with their values, so that the fast path looks them up instead of parsing them:
/// 512 slots, direct-mapped, each holding the text (7 to 15 bytes and the space or tab after
/// it, zero-padded to 16 bytes) of the last address that fell there. A slot holds only text
/// that `ipv4()` accepted, and a hit needs the same bytes, so a hit has the value parsing would
/// give. One memo per thread.
public final class AddressMemo {
  struct Entry {
    var head: UInt64 = 0
    var tail: UInt64 = 0
    var value: UInt32 = 0
  }

  static let slots = 512
  let entries: UnsafeMutablePointer<Entry>

  public init() {
    entries = .allocate(capacity: Self.slots)
    entries.initialize(repeating: Entry(), count: Self.slots)
  }

  deinit {
    entries.deinitialize(count: Self.slots)
    entries.deallocate()
  }

  /// The slot of a key.
  @inline(__always)
  static func slot(_ head: UInt64, _ tail: UInt64) -> Int {
    Int(truncatingIfNeeded: ((head ^ tail &* 0x9E37_79B9_7F4A_7C15) &* 0xBF58_476D_1CE4_E5B9) >> 55)
  }

  /// The top bit of each byte of `word` that is a space or a tab, and maybe bits above the
  /// lowest one (a borrow), never below it.
  @inline(__always)
  static func separators(_ word: UInt64) -> UInt64 {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let space = word ^ (ones &* 0x20)
    let tab = word ^ (ones &* 0x09)
    return ((space &- ones) & ~space | (tab &- ones) & ~tab) & (ones &* 0x80)
  }
}
