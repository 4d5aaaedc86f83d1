import LBCore

/// Report text appended to one growing buffer without a `String` on the way: literals, spaces,
/// integers, the report's six-decimal doubles, addresses and endpoints, each byte for byte what
/// the `JSON` tree writes for the same value (`JSONByteWriterTests` compares them).
///
/// The client lists of a large report (tens of thousands of objects) are written this way:
/// building each value as a `String` and then copying it cost several times the writing. Every
/// write checks the room it needs (one comparison) and the buffer doubles when it is short.
struct JSONByteWriter: ~Copyable {
  private var base: UnsafeMutablePointer<UInt8>
  private var capacity: Int
  /// Bytes written so far.
  private(set) var count = 0

  init(capacity: Int = 1 << 12) {
    self.capacity = max(capacity, 64)
    base = .allocate(capacity: self.capacity)
  }

  deinit { base.deallocate() }

  /// Appends the text written to `text` and starts afresh: a long text is written in parts
  /// (a client at a time) into an array reserved for all of it, so it is never copied whole.
  mutating func drain(into text: inout [UInt8]) {
    text.append(contentsOf: UnsafeBufferPointer(start: base, count: count))
    count = 0
  }

  /// Where the next `n` bytes go, after making room for them; the caller then adds what it
  /// stored to `count`.
  @inline(__always)
  private mutating func room(_ n: Int) -> UnsafeMutablePointer<UInt8> {
    if capacity - count < n { grow(n) }
    return base + count
  }

  @inline(never)
  private mutating func grow(_ n: Int) {
    var larger = capacity * 2
    while larger - count < n { larger *= 2 }
    let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
    moved.initialize(from: base, count: count)
    base.deallocate()
    base = moved
    capacity = larger
  }

  /// Appends a literal's bytes.
  @inline(__always)
  mutating func write(_ literal: StaticString) {
    let n = literal.utf8CodeUnitCount
    room(n).initialize(from: literal.utf8Start, count: n)
    count += n
  }

  @inline(__always)
  mutating func write(byte: UInt8) {
    room(1).initialize(to: byte)
    count += 1
  }

  mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) {
    guard let start = bytes.baseAddress else { return }
    room(bytes.count).initialize(from: start, count: bytes.count)
    count += bytes.count
  }

  mutating func writeSpaces(_ n: Int) {
    guard n > 0 else { return }
    room(n).initialize(repeating: 0x20, count: n)
    count += n
  }

  /// Decimal digits, `-` first when negative (as `JSON.writeInteger`).
  mutating func write(_ value: Int64) {
    let p = room(20)  // "-9223372036854775808"
    var end = 0
    if value < 0 {
      p[0] = 0x2D
      end = 1
    }
    end += JSONByteWriter.writeDigits(value.magnitude, to: p + end)
    count += end
  }

  /// `value`'s decimal digits at `p` (20 at most); returns how many.
  @inline(__always)
  static func writeDigits(_ value: UInt64, to p: UnsafeMutablePointer<UInt8>) -> Int {
    var digits = 1
    var rest = value
    while rest >= 10 {
      rest /= 10
      digits += 1
    }
    rest = value
    var i = digits
    repeat {
      i -= 1
      p[i] = 0x30 + UInt8(truncatingIfNeeded: rest % 10)
      rest /= 10
    } while i > 0
    return digits
  }

  /// `JSON.formatDouble(value)`: six decimal places at most, trailing zeros dropped, no
  /// exponent; `null` when not finite.
  mutating func write(_ value: Double) {
    guard value.isFinite else { return write("null") }
    let scaled = (value * 1_000_000).rounded()
    if scaled == 0 { return write(byte: 0x30) }
    let magnitude = abs(scaled)
    // Beyond six decimals in an Int64 the shortest form (`1e+20`) is what formatDouble prints.
    guard magnitude < 9e18 else {
      var text = value.description
      text.withUTF8 { write($0) }
      return
    }
    let units = UInt64(magnitude)
    let p = room(28)  // "-", 13 digits, ".", 6 digits
    var end = 0
    if scaled < 0 {
      p[0] = 0x2D
      end = 1
    }
    end += JSONByteWriter.writeDigits(units / 1_000_000, to: p + end)
    var fraction = units % 1_000_000
    if fraction != 0 {
      var places = 6
      while fraction % 10 == 0 {
        fraction /= 10
        places -= 1
      }
      p[end] = 0x2E
      let last = end + places
      var i = last
      while i > end {
        p[i] = 0x30 + UInt8(truncatingIfNeeded: fraction % 10)
        fraction /= 10
        i -= 1
      }
      end = last + 1
    }
    count += end
  }

  /// A JSON string, escaped as `JSON.writeString` escapes it.
  mutating func writeString(_ s: String) {
    var text = s
    text.withUTF8 { bytes in
      write(byte: 0x22)
      var plain = bytes.startIndex
      for i in bytes.indices {
        let byte = bytes[i]
        guard byte < 0x20 || byte == 0x22 || byte == 0x5C else { continue }
        write(UnsafeBufferPointer(rebasing: bytes[plain..<i]))
        plain = i + 1
        switch byte {
        case 0x22: write("\\\"")
        case 0x5C: write("\\\\")
        case 0x0A: write("\\n")
        case 0x0D: write("\\r")
        case 0x09: write("\\t")
        default:
          let hex: StaticString = "0123456789abcdef"
          write("\\u00")
          write(byte: hex.utf8Start[Int(byte >> 4)])
          write(byte: hex.utf8Start[Int(byte & 0xF)])
        }
      }
      write(UnsafeBufferPointer(rebasing: bytes[plain...]))
      write(byte: 0x22)
    }
  }

  /// The address's text (`IPAddress.description`), unquoted.
  mutating func write(_ address: IPAddress) {
    switch address {
    case .v4(let a):
      count += JSONByteWriter.writeDottedQuad(a.value, to: room(16))
    case .v6(let a):
      var text = a.description
      text.withUTF8 { write($0) }
    }
  }

  /// The endpoint's text (`Endpoint.description`), unquoted.
  mutating func write(_ endpoint: Endpoint) {
    count += JSONByteWriter.writeEndpoint(endpoint, to: room(JSONByteWriter.endpointTextLimit + 1))
  }

  /// `a.b.c.d` at `p`; returns how many (15 at most), but stores up to 16 (a dot after the last
  /// octet, left uncounted).
  @inline(__always)
  static func writeDottedQuad(_ value: UInt32, to p: UnsafeMutablePointer<UInt8>) -> Int {
    let raw = UnsafeMutableRawPointer(p)
    var i = 0
    // Each octet is one table entry, stored as four bytes at once: `i` is at most 12 before
    // the last store, so the 16 bytes the caller gave hold them.
    @inline(__always) func put(_ octet: UInt32) {
      let entry = octetText[Int(truncatingIfNeeded: octet & 0xFF)]
      (raw + i).storeBytes(of: UInt32(truncatingIfNeeded: entry).littleEndian, as: UInt32.self)
      i &+= Int(truncatingIfNeeded: entry &>> 32)
    }
    put(value &>> 24)
    put(value &>> 16)
    put(value &>> 8)
    put(value)
    return i &- 1
  }

  /// For each octet value: its digits and a dot in the low four bytes (first character lowest),
  /// the count of those characters above.
  private static let octetText: [UInt64] = (0..<256).map { (octet: Int) -> UInt64 in
    var text = Array(String(octet).utf8) + [0x2E]
    let length = UInt64(text.count)
    while text.count < 4 { text.append(0) }
    return text.reversed().reduce(0) { $0 << 8 | UInt64($1) } | length << 32
  }

  /// The longest endpoint text: `[` + 39 characters of IPv6 + `]:65535`.
  static let endpointTextLimit = 47

  /// `endpoint.description` at `p` (`endpointTextLimit` bytes at most); returns how many.
  static func writeEndpoint(_ endpoint: Endpoint, to p: UnsafeMutablePointer<UInt8>) -> Int {
    var i: Int
    switch endpoint.address {
    case .v4(let a):
      i = writeDottedQuad(a.value, to: p)
    case .v6(let a):
      var text = a.description
      p[0] = 0x5B
      i = text.withUTF8 { bytes in
        // RFC 5952 text is 39 characters at most; longer would not be an address.
        let n = min(bytes.count, endpointTextLimit - 8)
        if let start = bytes.baseAddress { (p + 1).initialize(from: start, count: n) }
        return 1 + n
      }
      p[i] = 0x5D
      i += 1
    }
    p[i] = 0x3A
    i += 1
    return i + writeDigits(UInt64(endpoint.port), to: p + i)
  }
}
