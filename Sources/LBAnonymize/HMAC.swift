/// HMAC-SHA-256 (RFC 2104 with the hash of FIPS 180-4): a keyed pseudo-random function.
///
/// The padded key is absorbed once, at `init`; each `authenticate` then starts from copies of
/// the inner and outer states, so a message of up to 55 bytes costs two compressions.
public struct HMACSHA256: Sendable {
  var inner = SHA256()
  var outer = SHA256()

  /// A key longer than the 64-byte block is hashed first, as RFC 2104 §2 says; a shorter one is
  /// padded with zeros.
  public init<Key: Collection<UInt8>>(key: Key) {
    var block = key.count > SHA256.blockLength ? SHA256.hash(key) : Array(key)
    block += [UInt8](repeating: 0, count: SHA256.blockLength - block.count)
    inner.update(block.map { $0 ^ 0x36 })
    outer.update(block.map { $0 ^ 0x5c })
  }

  /// HMAC(K, message) = H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ message)), 32 bytes.
  public func authenticate<Bytes: Sequence<UInt8>>(_ message: Bytes) -> [UInt8] {
    var i = inner
    i.update(message)
    var o = outer
    o.update(i.finalize())
    return o.finalize()
  }
}
