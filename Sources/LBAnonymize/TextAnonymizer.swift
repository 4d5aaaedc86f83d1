import LBCore

/// Replaces every IPv4 and IPv6 literal in a text with its prefix-preserving pseudonym, and,
/// when asked, chosen names (namespaces, Services, Pods, nodes) with keyed hashes.
///
/// It works on rendered text rather than on report fields, so that no renderer can leak an
/// address it forgot to pass through: `10.0.0.1`, `10.0.0.1:80`, `[fd00::1]:80`,
/// `10.0.0.0/8`, `` `10.0.0.1` `` and `| 10.0.0.1 |` are all found. Ports, prefix lengths and
/// everything around an address stay as they are.
///
/// How it finds addresses: from each position, it takes the run of hex digits, `.` and `:` that
/// starts there, drops trailing `.` (sentence ends) and a single trailing `:`, and replaces the
/// run when it parses as an IPv6 address, or as an IPv4 address (the whole run, or the part
/// before its first `:`, which is `IP:port`); otherwise it moves on by one byte. It errs towards
/// replacing: a version number with four parts (`1.2.3.4`) is replaced as if it were an address.
public struct TextAnonymizer: Sendable {
  let addresses: PrefixPreservingAnonymizer
  let nameKey: HMACSHA256
  /// Name parts to hash, mapped to their pseudonyms.
  var names: [String: String] = [:]
  var cache: [IPAddress: String] = [:]

  /// The smallest key accepted, in bytes: a shorter secret could be guessed.
  public static let minimumKeyLength = 16

  /// `hashNames` lists names whose parts (split at `/`, a `:port` suffix dropped) are replaced by
  /// `namePseudonym(_:)` wherever they stand as a whole word; empty keeps names as they are.
  public init<Key: Collection<UInt8>>(key: Key, hashNames: [String] = []) {
    addresses = PrefixPreservingAnonymizer(key: key)
    // A separate key for names, so that name hashes say nothing about address pseudonyms.
    nameKey = HMACSHA256(key: HMACSHA256(key: key).authenticate(Array("lbscope names".utf8)))
    for name in hashNames {
      for part in Self.nameParts(name) where !part.isEmpty { names[part] = namePseudonym(part) }
    }
  }

  /// The parts of a Kubernetes name that identify something: `payments/checkout:http` gives
  /// `payments` and `checkout` (the port name is kept).
  public static func nameParts(_ name: String) -> [String] {
    var parts = name.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
    if let last = parts.last, let colon = last.firstIndex(of: ":") {
      parts[parts.count - 1] = String(last[..<colon])
    }
    return parts
  }

  /// `n-` and ten hex digits of a keyed hash: stable across reports made with the same key.
  public func namePseudonym(_ name: String) -> String {
    let digest = nameKey.authenticate(Array(name.utf8))
    let hex = Array("0123456789abcdef".utf8)
    var out: [UInt8] = Array("n-".utf8)
    for byte in digest.prefix(5) {
      out.append(hex[Int(byte >> 4)])
      out.append(hex[Int(byte & 0xF)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// The pseudonym of one address, as text.
  public mutating func pseudonym(_ address: IPAddress) -> String {
    if let known = cache[address] { return known }
    let text = addresses.anonymize(address).description
    cache[address] = text
    return text
  }

  /// Addresses and (if asked) names replaced.
  public mutating func anonymize(_ text: String) -> String {
    replaceNames(in: replaceAddresses(in: text))
  }

  /// Addresses replaced, names kept: for JSON keys, which are addresses or field names.
  public mutating func replaceAddresses(in text: String) -> String {
    let bytes = Array(text.utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count + 16)
    var i = 0
    while i < bytes.count {
      guard Self.isRunByte(bytes[i]), let (length, address) = Self.address(in: bytes, at: i) else {
        // Not an address starting here; one starting further into the run is still found
        // (`ab10.0.0.1`), so step one byte, not one run.
        out.append(bytes[i])
        i += 1
        continue
      }
      out.append(contentsOf: pseudonym(address).utf8)
      i += length
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// The address literal starting at `start`, and its length in bytes.
  static func address(in bytes: [UInt8], at start: Int) -> (Int, IPAddress)? {
    // The longest literal is 45 bytes (`ffff:…:255.255.255.255`); a window bounds the work on
    // long hex runs.
    let limit = min(bytes.count, start + 64)
    var end = start
    while end < limit && isRunByte(bytes[end]) { end += 1 }
    // Sentence punctuation after an address: "to 10.0.0.1." or "10.0.0.1: refused".
    while end > start && bytes[end - 1] == 0x2E { end -= 1 }
    if end - start >= 2 && bytes[end - 1] == 0x3A && bytes[end - 2] != 0x3A { end -= 1 }
    guard end - start >= 2 else { return nil }
    let run = bytes[start..<end]
    if let colon = run.firstIndex(of: 0x3A) {
      if let v6 = parse(run, IPv6Address.parse) { return (end - start, .v6(v6)) }
      // `IP:port`: the port is scanned on its own afterwards.
      if let v4 = parse(run[start..<colon], IPv4Address.parse) { return (colon - start, .v4(v4)) }
      return nil
    }
    return parse(run, IPv4Address.parse).map { (end - start, .v4($0)) }
  }

  /// Names replaced where they stand as a whole word (a run of letters, digits, `-`, `_`, `.`;
  /// a trailing `.` may end a sentence).
  public func replaceNames(in text: String) -> String {
    guard !names.isEmpty else { return text }
    let bytes = Array(text.utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = 0
    while i < bytes.count {
      guard Self.isNameByte(bytes[i]) else {
        out.append(bytes[i])
        i += 1
        continue
      }
      var end = i
      while end < bytes.count && Self.isNameByte(bytes[end]) { end += 1 }
      var word = end
      var replaced = false
      while word > i {
        if let pseudonym = names[String(decoding: bytes[i..<word], as: UTF8.self)] {
          out.append(contentsOf: pseudonym.utf8)
          out.append(contentsOf: bytes[word..<end])
          replaced = true
          break
        }
        guard bytes[word - 1] == 0x2E else { break }
        word -= 1
      }
      if !replaced { out.append(contentsOf: bytes[i..<end]) }
      i = end
    }
    return String(decoding: out, as: UTF8.self)
  }

  static func parse<T>(_ slice: ArraySlice<UInt8>, _ parser: (UnsafeRawBufferPointer) -> T?) -> T? {
    slice.withUnsafeBytes { parser($0) }
  }

  /// Hex digits, `.` and `:`: what an address literal is made of.
  @inline(__always) static func isRunByte(_ b: UInt8) -> Bool {
    (b >= 0x30 && b <= 0x3A) || b == 0x2E || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66)
  }

  @inline(__always) static func isNameByte(_ b: UInt8) -> Bool {
    (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
      || b == 0x5F || b == 0x2E
  }
}
