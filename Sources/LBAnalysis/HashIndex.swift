import LBCore

/// A key of a `HashIndex`: equality plus a cheap 64-bit mix of its bits.
protocol IndexKey: Equatable, Sendable {
  var bits: UInt64 { get }
}

/// Interns keys as dense indices (0, 1, 2, … in insertion order) in an open-addressing table.
///
/// The analyzer looks up three keys per connection (route, client, client–backend pair), a
/// million times for a large table; `Dictionary` hashes each key with SipHash through the
/// `Hasher` protocol, which costs more than the parsing around it. Here a key is reduced to 64
/// bits once (`IndexKey.bits`), mixed with a per-process random seed (so addresses chosen by a
/// sender cannot be aimed at one bucket ahead of time), and probed linearly in a table kept at
/// most half full. Keys live in `keys`, in insertion order, so iteration never depends on hashes.
struct HashIndex<Key: IndexKey>: Sendable {
  /// Every key, in the order it was first inserted; a key's index is its position here.
  private(set) var keys: [Key] = []
  /// Per slot: 0 when empty, else (upper 32 bits of the hash) << 32 | (index + 1).
  private var slots: [UInt64]
  private var mask: Int

  /// The process-wide seed mixed into every hash.
  static var seed: UInt64 { hashSeed }

  init(minimumCapacity: Int = 16) {
    var size = 16
    while size < minimumCapacity * 2 { size <<= 1 }
    slots = [UInt64](repeating: 0, count: size)
    mask = size - 1
    keys.reserveCapacity(minimumCapacity)
  }

  var count: Int { keys.count }

  @inline(__always)
  static func hash(_ key: Key) -> UInt64 { mix(key.bits ^ hashSeed) }

  /// The index of `key`, if present.
  @inline(__always)
  func find(_ key: Key) -> Int32? {
    let h = Self.hash(key)
    let tag = h >> 32
    var slot = Int(truncatingIfNeeded: h) & mask
    while true {
      let entry = slots[slot]
      if entry == 0 { return nil }
      if entry >> 32 == tag {
        let index = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) - 1
        if keys[index] == key { return Int32(truncatingIfNeeded: index) }
      }
      slot = (slot + 1) & mask
    }
  }

  /// The index of `key`, inserting it when absent; `inserted` says which happened.
  @inline(__always)
  mutating func insert(_ key: Key) -> (index: Int32, inserted: Bool) {
    let h = Self.hash(key)
    let tag = h >> 32
    var slot = Int(truncatingIfNeeded: h) & mask
    while true {
      let entry = slots[slot]
      if entry == 0 { break }
      if entry >> 32 == tag {
        let index = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) - 1
        if keys[index] == key { return (Int32(truncatingIfNeeded: index), false) }
      }
      slot = (slot + 1) & mask
    }
    let index = keys.count
    keys.append(key)
    slots[slot] = tag << 32 | UInt64(index + 1)
    if keys.count * 2 > slots.count { grow() }
    return (Int32(truncatingIfNeeded: index), true)
  }

  private mutating func grow() {
    let size = slots.count * 2
    var fresh = [UInt64](repeating: 0, count: size)
    let freshMask = size - 1
    for (index, key) in keys.enumerated() {
      let h = Self.hash(key)
      var slot = Int(truncatingIfNeeded: h) & freshMask
      while fresh[slot] != 0 { slot = (slot + 1) & freshMask }
      fresh[slot] = (h >> 32) << 32 | UInt64(index + 1)
    }
    slots = fresh
    mask = freshMask
  }
}

/// SplitMix64's finalizer: every input bit affects every output bit.
@inline(__always)
func mix(_ x: UInt64) -> UInt64 {
  var z = x &+ 0x9E37_79B9_7F4A_7C15
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  return z ^ (z >> 31)
}

/// Drawn once per process from the system's random source.
let hashSeed = UInt64.random(in: .min ... .max)

extension IPAddress {
  /// The address folded into 64 bits for `HashIndex`.
  @inline(__always)
  var indexBits: UInt64 {
    switch self {
    case .v4(let a): return UInt64(a.value)
    case .v6(let a): return mix(a.high) ^ a.low ^ 0x8000_0000_0000_0000
    }
  }
}

extension Endpoint {
  @inline(__always)
  var indexBits: UInt64 { address.indexBits &* 0x1_0001 ^ UInt64(port) }
}
