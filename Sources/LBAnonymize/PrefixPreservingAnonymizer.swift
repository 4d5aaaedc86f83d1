import LBCore

/// Prefix-preserving address pseudonyms in the manner of Crypto-PAn (Xu, Fan, Ammar, Moon,
/// "Prefix-Preserving IP Address Anonymization", ICNP 2002), with HMAC-SHA-256 as the keyed
/// pseudo-random function in place of AES.
///
/// Bit i of the pseudonym (counting from the most significant, 0-based) is bit i of the address
/// XOR f(first i bits of the address), where f is one bit of HMAC(key, family ‖ i ‖ prefix). So
/// two addresses that share exactly their first n bits have pseudonyms that share exactly their
/// first n bits: bits 0..<n see the same prefixes and flip alike, and at bit n the inputs differ
/// while f sees the same prefix, so the outputs differ too. The same key gives the same
/// pseudonyms in every report, which keeps reports from several nodes comparable; without the
/// key, recovering an address means inverting HMAC-SHA-256.
///
/// Each IPv4 address costs 32 HMACs and each IPv6 address 128; the caller caches results.
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) keep their mapped form and take the IPv4
/// pseudonym, so one host has one pseudonym in either notation.
public struct PrefixPreservingAnonymizer: Sendable {
  let prf: HMACSHA256

  public init<Key: Collection<UInt8>>(key: Key) {
    prf = HMACSHA256(key: key)
  }

  public func anonymize(_ address: IPAddress) -> IPAddress {
    switch address {
    case .v4(let a): .v4(anonymize(a))
    case .v6(let a): .v6(anonymize(a))
    }
  }

  public func anonymize(_ address: IPv4Address) -> IPv4Address {
    let bits = anonymizeBits(high: UInt64(address.value) << 32, low: 0, width: 32, family: 4)
    return IPv4Address(UInt32(truncatingIfNeeded: bits.high >> 32))
  }

  public func anonymize(_ address: IPv6Address) -> IPv6Address {
    if let v4 = address.mappedIPv4 {
      return IPv6Address(high: 0, low: 0xFFFF_0000_0000 | UInt64(anonymize(v4).value))
    }
    let bits = anonymizeBits(high: address.high, low: address.low, width: 128, family: 6)
    return IPv6Address(high: bits.high, low: bits.low)
  }

  /// The first `width` bits of (high, low), most significant first, each XORed with f(prefix).
  func anonymizeBits(high: UInt64, low: UInt64, width: Int, family: UInt8) -> (high: UInt64, low: UInt64) {
    var outHigh: UInt64 = 0
    var outLow: UInt64 = 0
    // message: family, prefix length in bits, then the 16 address bytes with bits from the
    // prefix length on set to zero. A fixed layout keeps every (family, length, prefix) distinct.
    var message = [UInt8](repeating: 0, count: 18)
    message[0] = family
    for i in 0..<width {
      message[1] = UInt8(i)
      let (maskedHigh, maskedLow) = Self.prefix(high: high, low: low, bits: i)
      for j in 0..<8 {
        message[2 + j] = UInt8(truncatingIfNeeded: maskedHigh >> UInt64(56 - 8 * j))
        message[10 + j] = UInt8(truncatingIfNeeded: maskedLow >> UInt64(56 - 8 * j))
      }
      let flip = UInt64(prf.authenticate(message)[0] >> 7)
      if i < 64 {
        let bit = (high >> UInt64(63 - i)) & 1
        outHigh |= (bit ^ flip) << UInt64(63 - i)
      } else {
        let bit = (low >> UInt64(127 - i)) & 1
        outLow |= (bit ^ flip) << UInt64(127 - i)
      }
    }
    return (outHigh, outLow)
  }

  /// The first `bits` bits of the 128-bit value (high, low), the rest zero.
  static func prefix(high: UInt64, low: UInt64, bits: Int) -> (UInt64, UInt64) {
    if bits == 0 { return (0, 0) }
    if bits < 64 { return (high & ~(UInt64.max >> UInt64(bits)), 0) }
    if bits == 64 { return (high, 0) }
    if bits < 128 { return (high, low & ~(UInt64.max >> UInt64(bits - 64))) }
    return (high, low)
  }
}
