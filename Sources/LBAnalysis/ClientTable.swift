import CPrefetch
import LBCore

extension ConnectionAnalyzer {
  /// The clients of every service: records in insertion order, found through an open-addressing
  /// slot array (8 bytes a slot: the upper 32 bits of the hash and the record's index + 1).
  ///
  /// This is the one table a large conntrack dump touches at random for every line (hundreds of
  /// thousands of clients). A lookup costs two cache misses (slot, then record); a record holds
  /// the client's connections and its first two backends, so nothing else is touched. Storing the
  /// records in the slots themselves saves a miss per lookup but, at a fill that keeps probes
  /// short, takes about twice the memory; on the 1,000,000-entry benchmark (scripts/bench-conntrack)
  /// that variant took 0.74–0.99 s and 172 MB against 0.61–0.79 s and 101 MB for this one, as
  /// growing and merging then touch every record at random.
  struct ClientTable: Sendable {
    private(set) var records: [ClientRecord] = []
    private var slots: [UInt64]
    private var mask: Int

    enum Probe {
      case found(slot: Int)
      case vacant(slot: Int, tag: UInt64)
    }

    init(minimumCapacity: Int = 1 << 14) {
      var size = 16
      while size < minimumCapacity * 2 { size <<= 1 }
      slots = [UInt64](repeating: 0, count: size)
      mask = size - 1
      records.reserveCapacity(minimumCapacity)
    }

    var count: Int { records.count }

    /// The record a probe found or an insert made (its index), in place.
    subscript(slot slot: Int) -> ClientRecord {
      @inline(__always) get { records[slot] }
      @inline(__always) _modify { yield &records[slot] }
    }

    /// The record inserted `index`-th.
    subscript(index: Int32) -> ClientRecord {
      @inline(__always) get { records[Int(index)] }
    }

    @inline(__always)
    func probe(_ key: ClientKey) -> Probe {
      let h = mix(key.bits ^ hashSeed)
      let tag = h >> 32
      var slot = Int(truncatingIfNeeded: h) & mask
      while true {
        let entry = slots[slot]
        if entry == 0 { return .vacant(slot: slot, tag: tag) }
        if entry >> 32 == tag {
          let index = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) - 1
          if records[index].key == key { return .found(slot: index) }
        }
        slot = (slot + 1) & mask
      }
    }

    /// The first slot `key` probes.
    @inline(__always)
    func homeSlot(_ key: ClientKey) -> Int { Int(truncatingIfNeeded: mix(key.bits ^ hashSeed)) & mask }

    /// Starts loading `slot` (from `homeSlot`) into the cache.
    @inline(__always)
    func prefetch(slot: Int) {
      slots.withUnsafeBufferPointer { lbscope_prefetch($0.baseAddress.map { $0 + (slot & mask) }) }
    }

    /// Starts loading the record that `slot` (already in the cache) points to, if any.
    @inline(__always)
    func prefetchRecord(slot: Int) {
      let entry = slots[slot & mask]
      guard entry != 0 else { return }
      let index = Int(truncatingIfNeeded: entry & 0xFFFF_FFFF) - 1
      records.withUnsafeBufferPointer { lbscope_prefetch($0.baseAddress.map { $0 + index }) }
    }

    /// Inserts a record for `key` at the vacant slot `probe(key)` gave (nothing inserted since);
    /// returns the record's index, which `subscript(slot:)` takes.
    @inline(__always)
    mutating func insert(_ key: ClientKey, connections: Int32, slot: Int, tag: UInt64) -> Int {
      let index = records.count
      records.append(
        ClientRecord(key: key, connections: connections, index: Int32(truncatingIfNeeded: index)))
      slots[slot] = tag << 32 | UInt64(index + 1)
      if records.count * 2 > slots.count { grow() }
      return index
    }

    /// Makes room for `more` records without growing on the way.
    mutating func reserve(_ more: Int) {
      records.reserveCapacity(records.count + more)
      while (records.count + more) * 2 > slots.count { grow() }
    }

    private mutating func grow() {
      let size = slots.count * 2
      var fresh = [UInt64](repeating: 0, count: size)
      let freshMask = size - 1
      for (index, record) in records.enumerated() {
        let h = mix(record.key.bits ^ hashSeed)
        var slot = Int(truncatingIfNeeded: h) & freshMask
        while fresh[slot] != 0 { slot = (slot + 1) & freshMask }
        fresh[slot] = (h >> 32) << 32 | UInt64(index + 1)
      }
      slots = fresh
      mask = freshMask
    }
  }
}
