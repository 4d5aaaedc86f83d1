/// An IPv4 address held in one integer, in host order (`10.0.0.1` is `0x0A00_0001`).
public struct IPv4Address: Hashable, Comparable, Sendable {
  public var value: UInt32

  @inlinable public init(_ value: UInt32) { self.value = value }

  public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
    value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
  }

  public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }

  /// Dotted-quad text, `192.0.2.1`.
  public var description: String {
    // Written into a small buffer: reports print hundreds of thousands of addresses, and string
    // interpolation of four integers costs several times more.
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 21) { buffer in
      let count = writeDecimal(into: buffer, at: 0)
      return String(decoding: UnsafeBufferPointer(rebasing: buffer[..<count]), as: UTF8.self)
    }
  }

  /// Writes the dotted quad into `buffer` from `start` (at most 15 bytes); returns the end.
  @usableFromInline
  func writeDecimal(into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) -> Int {
    var i = start
    for shift in [24, 16, 8, 0] as [UInt32] {
      let octet = UInt8(truncatingIfNeeded: value >> shift)
      if octet >= 100 {
        buffer[i] = 0x30 + octet / 100
        i += 1
      }
      if octet >= 10 {
        buffer[i] = 0x30 + octet / 10 % 10
        i += 1
      }
      buffer[i] = 0x30 + octet % 10
      i += 1
      if shift != 0 {
        buffer[i] = 0x2E
        i += 1
      }
    }
    return i
  }

  /// Parses dotted-quad text; returns `nil` for anything else (no leading `+`, no octal, at most
  /// three digits per octet, each octet at most 255).
  public init?(_ text: String) {
    guard let parsed = parseUTF8(text, IPv4Address.parse) else { return nil }
    self = parsed
  }

  /// Parses dotted-quad bytes. The whole buffer must be the address.
  @inlinable
  public static func parse(_ bytes: UnsafeRawBufferPointer) -> IPv4Address? {
    var value: UInt32 = 0
    var octet: UInt32 = 0
    var digits = 0
    var dots = 0
    for byte in bytes {
      if byte &- 0x30 < 10 {
        octet = octet &* 10 &+ UInt32(byte &- 0x30)
        digits &+= 1
        if digits > 3 || octet > 255 { return nil }
      } else if byte == 0x2E {  // "."
        if digits == 0 || dots == 3 { return nil }
        value = value << 8 | octet
        octet = 0
        digits = 0
        dots &+= 1
      } else {
        return nil
      }
    }
    if digits == 0 || dots != 3 { return nil }
    return IPv4Address(value << 8 | octet)
  }
}

/// An IPv6 address held in two integers, most significant half first.
public struct IPv6Address: Hashable, Comparable, Sendable {
  public var high: UInt64
  public var low: UInt64

  @inlinable public init(high: UInt64, low: UInt64) {
    self.high = high
    self.low = low
  }

  /// Builds an address from its eight 16-bit groups.
  public init(groups: [UInt16]) {
    precondition(groups.count == 8, "an IPv6 address has eight groups")
    var high: UInt64 = 0
    var low: UInt64 = 0
    for i in 0..<4 { high = high << 16 | UInt64(groups[i]) }
    for i in 4..<8 { low = low << 16 | UInt64(groups[i]) }
    self.init(high: high, low: low)
  }

  public static func < (lhs: Self, rhs: Self) -> Bool {
    (lhs.high, lhs.low) < (rhs.high, rhs.low)
  }

  /// The eight 16-bit groups, most significant first.
  public var groups: [UInt16] {
    (0..<8).map { i in
      let half = i < 4 ? high : low
      return UInt16(truncatingIfNeeded: half >> (UInt64(3 - i % 4) * 16))
    }
  }

  /// An IPv4-mapped address (`::ffff:a.b.c.d`) yields its IPv4 address.
  public var mappedIPv4: IPv4Address? {
    guard high == 0, low >> 32 == 0xFFFF else { return nil }
    return IPv4Address(UInt32(truncatingIfNeeded: low))
  }

  /// Text in the recommended form of RFC 5952: lowercase, no leading zeros, the longest run of
  /// two or more zero groups (the first on a tie) as `::`, and `::ffff:a.b.c.d` for IPv4-mapped.
  public var description: String {
    if let v4 = mappedIPv4 { return "::ffff:" + v4.description }
    let g = groups
    var bestStart = -1
    var bestLength = 0
    var i = 0
    while i < 8 {
      if g[i] == 0 {
        var j = i
        while j < 8 && g[j] == 0 { j += 1 }
        if j - i > bestLength {
          bestStart = i
          bestLength = j - i
        }
        i = j
      } else {
        i += 1
      }
    }
    if bestLength < 2 { bestStart = -1 }
    var out = ""
    i = 0
    while i < 8 {
      if i == bestStart {
        out += "::"
        i += bestLength
        continue
      }
      if !out.isEmpty && !out.hasSuffix(":") { out += ":" }
      out += String(g[i], radix: 16)
      i += 1
    }
    return out
  }

  public init?(_ text: String) {
    guard let parsed = parseUTF8(text, IPv6Address.parse) else { return nil }
    self = parsed
  }

  /// Parses RFC 4291 text: full, compressed (`::`), with or without leading zeros, and with a
  /// trailing dotted quad. A zone (`%eth0`) is not accepted. The whole buffer must be the address.
  public static func parse(_ bytes: UnsafeRawBufferPointer) -> IPv6Address? {
    let count = bytes.count
    if count < 2 || count > 45 { return nil }
    var head: (UInt64, UInt64) = (0, 0)  // groups before "::", shifted in
    var headCount = 0
    var tail: (UInt64, UInt64) = (0, 0)  // groups after "::"
    var tailCount = 0
    var sawDoubleColon = false
    var i = 0

    func push(_ group: UInt64, into acc: inout (UInt64, UInt64)) {
      acc.0 = acc.0 << 16 | acc.1 >> 48
      acc.1 = acc.1 << 16 | group
    }

    if bytes[0] == 0x3A {  // leading ":" must be "::"
      guard bytes[1] == 0x3A else { return nil }
      sawDoubleColon = true
      i = 2
      if i == count { return IPv6Address(high: 0, low: 0) }
    }
    while i < count {
      // One group, or a trailing dotted quad.
      var group: UInt64 = 0
      var digits = 0
      let start = i
      while i < count, let nibble = hexValue(bytes[i]) {
        group = group << 4 | UInt64(nibble)
        digits += 1
        i += 1
        if digits > 4 { break }
      }
      if i < count && bytes[i] == 0x2E {  // "." : the rest is an IPv4 address
        guard
          let v4 = IPv4Address.parse(UnsafeRawBufferPointer(rebasing: bytes[start..<count]))
        else { return nil }
        let total = headCount + tailCount + 2
        if total > 8 || (!sawDoubleColon && total != 8) { return nil }
        if sawDoubleColon {
          push(UInt64(v4.value >> 16), into: &tail)
          push(UInt64(v4.value & 0xFFFF), into: &tail)
          tailCount += 2
        } else {
          push(UInt64(v4.value >> 16), into: &head)
          push(UInt64(v4.value & 0xFFFF), into: &head)
          headCount += 2
        }
        i = count
        break
      }
      if digits == 0 || digits > 4 { return nil }
      if sawDoubleColon {
        push(group, into: &tail)
        tailCount += 1
      } else {
        push(group, into: &head)
        headCount += 1
      }
      if headCount + tailCount > 8 { return nil }
      if i == count { break }
      guard bytes[i] == 0x3A else { return nil }
      i += 1
      if i < count && bytes[i] == 0x3A {
        if sawDoubleColon { return nil }
        sawDoubleColon = true
        i += 1
        if i == count { break }
      } else if i == count {
        return nil  // a trailing single ":"
      }
    }
    let total = headCount + tailCount
    if sawDoubleColon {
      if total > 7 { return nil }
    } else if total != 8 {
      return nil
    }
    // head groups occupy the top, tail groups the bottom.
    var result = head
    for _ in 0..<(8 - headCount) { push(0, into: &result) }
    return IPv6Address(high: result.0 | tail.0, low: result.1 | tail.1)
  }
}

/// Runs a byte parser over a string's UTF-8 without copying when the string is contiguous.
func parseUTF8<T>(_ text: String, _ parse: (UnsafeRawBufferPointer) -> T?) -> T? {
  var text = text
  return text.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
}

@inline(__always)
func hexValue(_ byte: UInt8) -> UInt8? {
  switch byte {
  case 0x30...0x39: return byte - 0x30
  case 0x61...0x66: return byte - 0x61 + 10
  case 0x41...0x46: return byte - 0x41 + 10
  default: return nil
  }
}

/// An IP address of either family, without allocation. IPv4 sorts before IPv6.
public enum IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
  case v4(IPv4Address)
  case v6(IPv6Address)

  public var description: String {
    switch self {
    case .v4(let a): a.description
    case .v6(let a): a.description
    }
  }

  public var isIPv6: Bool {
    if case .v6 = self { return true }
    return false
  }

  public init?(_ text: String) {
    guard let parsed = parseUTF8(text, IPAddress.parse) else { return nil }
    self = parsed
  }

  /// Parses either family; a `:` anywhere means IPv6.
  @inlinable
  public static func parse(_ bytes: UnsafeRawBufferPointer) -> IPAddress? {
    if bytes.count <= 15, let v4 = IPv4Address.parse(bytes) { return .v4(v4) }
    if let v6 = IPv6Address.parse(bytes) { return .v6(v6) }
    return nil
  }

  public static func < (lhs: Self, rhs: Self) -> Bool {
    switch (lhs, rhs) {
    case (.v4(let a), .v4(let b)): a < b
    case (.v6(let a), .v6(let b)): a < b
    case (.v4, .v6): true
    case (.v6, .v4): false
    }
  }
}
