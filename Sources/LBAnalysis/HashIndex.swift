import CTuning
import LBCore

/// What a `HashIndex` stores: a record found by its key. A key alone is its own record.
protocol IndexRecord: Sendable {
  associatedtype Key: IndexKey
  var key: Key { get }
}

/// A key of a `HashIndex`: equality plus a cheap 64-bit mix of its bits.
protocol IndexKey: IndexRecord, Equatable where Key == Self {
  var bits: UInt64 { get }
}

extension IndexKey {
  var key: Self { self }
}

/// Interns records by key as dense indices (0, 1, 2, … in insertion order) in an open-addressing
/// table.
///
/// The analyzer looks up three keys per observation (route, client, client–backend pair), a
/// million times for a large capture (the readers' IPv4 fast lane counts clients by sorting
/// instead, `IPv4ClientRun`); `Dictionary` hashes each key with SipHash through the
/// `Hasher` protocol, which costs more than the parsing around it. Here a key is reduced to 64
/// bits once (`IndexKey.bits`), mixed with a per-process random seed (so addresses chosen by a
/// sender cannot be aimed at one bucket ahead of time), and probed linearly in a table kept at
/// most half full. Records live in `records`, in insertion order, so iteration never depends on
/// hashes; a record carries its tallies beside its key, so a lookup that finds the key has the
/// tallies in the same cache line.
struct HashIndex<Record: IndexRecord>: Sendable {
  typealias Key = Record.Key

  /// Every record, in the order its key was first inserted; a key's index is its position here.
  private(set) var records: [Record] = []
  /// Per slot: 0 when empty, else (upper 32 bits of the hash) << 32 | (index + 1).
  private var slots: [UInt64]
  private var mask: Int

  /// Where a key is, or where it would go.
  enum Probe {
    case found(Int32)
    case vacant(slot: Int, tag: UInt64)
  }

  init(minimumCapacity: Int = 16) {
    var size = 16
    while size < minimumCapacity * 2 { size <<= 1 }
    slots = [UInt64](repeating: 0, count: size)
    mask = size - 1
    records.reserveCapacity(minimumCapacity)
  }

  var count: Int { records.count }

  /// The record at `index`, in place.
  subscript(index: Int32) -> Record {
    @inline(__always) get { records[Int(index)] }
    @inline(__always) _modify { yield &records[Int(index)] }
  }

  @inline(__always)
  static func hash(_ key: Key) -> UInt64 { mix(key.bits ^ hashSeed) }

  /// The index of `key`, or the slot where it would be inserted.
  @inline(__always)
  func probe(_ key: Key) -> Probe {
    let h = Self.hash(key)
    let tag = h >> 32
    var slot = Int(truncatingIfNeeded: h) & mask
    while true {
      let entry = slots[slot]
      if entry == 0 { return .vacant(slot: slot, tag: tag) }
      if entry >> 32 == tag {
        let index = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) - 1
        if records[index].key == key { return .found(Int32(truncatingIfNeeded: index)) }
      }
      slot = (slot + 1) & mask
    }
  }

  /// The index of `key`, if present.
  @inline(__always)
  func find(_ key: Key) -> Int32? {
    if case .found(let index) = probe(key) { return index }
    return nil
  }

  /// Inserts `record` at the vacant slot `probe(record.key)` gave (nothing inserted since).
  @inline(__always)
  mutating func insert(_ record: Record, slot: Int, tag: UInt64) -> Int32 {
    let index = records.count
    records.append(record)
    slots[slot] = tag << 32 | UInt64(index + 1)
    if records.count * 2 > slots.count { grow() }
    return Int32(truncatingIfNeeded: index)
  }

  /// The index of `record`'s key, inserting `record` when the key is absent; `inserted` says
  /// which happened.
  @inline(__always)
  mutating func insert(_ record: Record) -> (index: Int32, inserted: Bool) {
    switch probe(record.key) {
    case .found(let index): return (index, false)
    case .vacant(let slot, let tag): return (insert(record, slot: slot, tag: tag), true)
    }
  }

  /// Makes room for `more` records without growing on the way.
  mutating func reserve(_ more: Int) {
    records.reserveCapacity(records.count + more)
    while (records.count + more) * 2 > slots.count { grow() }
  }

  // Prefetch hints: a caller about to look up many keys at random (a large conntrack table's
  // clients) starts the loads of a batch first, so the cache misses overlap; see
  // `ConnectionAnalyzer.add(contentsOf:)`. Hints only: a lookup is still `probe`.

  /// The first slot `key` probes.
  @inline(__always)
  func homeSlot(_ key: Key) -> Int { Int(truncatingIfNeeded: Self.hash(key)) & mask }

  /// Starts loading `slot` (from `homeSlot`) into the cache.
  @inline(__always)
  func prefetch(slot: Int) {
    slots.withUnsafeBufferPointer { lbscope_prefetch($0.baseAddress.map { $0 + (slot & mask) }) }
  }

  /// Starts loading the record that `slot` (already loaded) points to, if any.
  @inline(__always)
  func prefetchRecord(slot: Int) {
    let entry = slots[slot & mask]
    guard entry != 0 else { return }
    let index = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) - 1
    records.withUnsafeBufferPointer { lbscope_prefetch($0.baseAddress.map { $0 + index }) }
  }

  /// Starts loading the record at `index`.
  @inline(__always)
  func prefetch(index: Int32) {
    records.withUnsafeBufferPointer { lbscope_prefetch($0.baseAddress.map { $0 + Int(index) }) }
  }

  private mutating func grow() {
    let size = slots.count * 2
    var fresh = [UInt64](repeating: 0, count: size)
    let freshMask = size - 1
    for (index, record) in records.enumerated() {
      let h = Self.hash(record.key)
      var slot = Int(truncatingIfNeeded: h) & freshMask
      while fresh[slot] != 0 { slot = (slot + 1) & freshMask }
      fresh[slot] = (h >> 32) << 32 | UInt64(index + 1)
    }
    slots = fresh
    mask = freshMask
  }
}

extension HashIndex where Record: IndexKey {
  /// Every key, in insertion order.
  var keys: [Record] { records }
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
