/// The IPv4 clients of DNATed connections from readers' fast lane (`IPv4Observation`), counted
/// by sorting instead of hashing.
///
/// Each connection appends one integer, client << 32 | backend, to `pending`; a fold sorts them
/// (radix sort: a few sequential passes) and adds them to `keys`/`counts`, each (client,
/// backend) once in ascending order. A hash table of a large conntrack table's clients costs a
/// cache miss or two per connection wherever it lives; here every pass is sequential, and
/// because runs are sorted by client, the parts several threads read are joined by merging,
/// not by looking every client up again. Memory stays bounded by the distinct (client, backend)
/// pairs plus `pendingLimit` connections, as a hash table's would by its clients.
struct IPv4ClientRun: Sendable {
  /// Connections since the last fold: client address << 32 | backend (route) number.
  var pending: [UInt64] = []
  /// Folded: each (client, backend) key once, ascending.
  var keys: [UInt64] = []
  /// `counts[i]`: the connections of `keys[i]`.
  var counts: [Int32] = []

  /// A fold starts when this many connections are pending (8 MiB of keys).
  static let pendingLimit = 1 << 20

  var isEmpty: Bool { pending.isEmpty && keys.isEmpty }

  @inline(__always)
  static func key(client: UInt32, backend: Int32) -> UInt64 {
    UInt64(client) << 32 | UInt64(UInt32(bitPattern: backend))
  }

  @inline(__always)
  static func client(_ key: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: key >> 32) }

  @inline(__always)
  static func backend(_ key: UInt64) -> Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: key)) }
}

/// The original sources behind translated (SNAT) addresses from readers' IPv4 fast lane, kept
/// as `IPv4ClientRun` keeps clients: one integer per connection, translated address number <<
/// 32 | original source, sorted and made unique by a fold.
struct IPv4SourceRun: Sendable {
  /// Connections since the last fold.
  var pending: [UInt64] = []
  /// Folded: each (translated address, source) once, ascending.
  var keys: [UInt64] = []

  @inline(__always)
  static func key(translated: Int32, source: UInt32) -> UInt64 {
    UInt64(UInt32(bitPattern: translated)) << 32 | UInt64(source)
  }

  @inline(__always)
  static func translated(_ key: UInt64) -> Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: key >> 32)) }

  @inline(__always)
  static func source(_ key: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: key) }
}

extension ConnectionAnalyzer {
  /// Sorts the pending IPv4 sources into the folded run, each once, keeping at most
  /// `maxSourcesPerTranslatedAddress` per translated address (the lowest; the address's count
  /// is then a lower bound, `full`).
  mutating func foldIPv4Sources() {
    guard !ipv4Sources.pending.isEmpty else { return }
    var pending = ipv4Sources.pending
    ipv4Sources.pending = []
    RadixSort.sort(&pending)
    let old = ipv4Sources.keys
    var keys: [UInt64] = []
    keys.reserveCapacity(old.count + pending.count / 4)
    let cap = options.maxSourcesPerTranslatedAddress
    var translated: Int32 = -1
    var kept = 0
    var i = 0
    var j = 0
    while i < old.count || j < pending.count {
      let key = j >= pending.count || (i < old.count && old[i] <= pending[j]) ? old[i] : pending[j]
      while i < old.count && old[i] == key { i += 1 }
      while j < pending.count && pending[j] == key { j += 1 }
      let t = IPv4SourceRun.translated(key)
      if t != translated {
        translated = t
        kept = 0
      }
      guard kept < cap else {
        translatedTallies[Int(t)].full = true
        continue
      }
      kept += 1
      keys.append(key)
    }
    ipv4Sources.keys = keys
  }

  /// Sorts the pending IPv4 connections into the folded run, keeping at most
  /// `maxClientsPerService` clients per service: the lowest addresses, which makes the choice
  /// independent of the order connections arrived in. A client past the cap, now or at a later
  /// fold when lower addresses have come, has all its connections counted as dropped; so every
  /// connection is either a kept client's or dropped, and a kept client's counts are complete.
  mutating func foldIPv4Clients() {
    guard !ipv4Clients.pending.isEmpty else { return }
    var pending = ipv4Clients.pending
    ipv4Clients.pending = []
    RadixSort.sort(&pending)
    let old = ipv4Clients.keys
    let oldCounts = ipv4Clients.counts
    var keys: [UInt64] = []
    var counts: [Int32] = []
    keys.reserveCapacity(old.count + pending.count / 2)
    counts.reserveCapacity(old.count + pending.count / 2)

    let cap = options.maxClientsPerService
    var clientsOf = [Int](repeating: 0, count: serviceTallies.count)
    // The services of the current client, and whether it is kept in each.
    var client: UInt32? = nil
    var servicesOfClient: [(service: Int32, kept: Bool)] = []
    var i = 0
    var j = 0
    while i < old.count || j < pending.count {
      let key: UInt64
      var count: Int32 = 0
      if j >= pending.count || (i < old.count && old[i] <= pending[j]) {
        key = old[i]
      } else {
        key = pending[j]
      }
      if i < old.count && old[i] == key {
        count += oldCounts[i]
        i += 1
      }
      while j < pending.count && pending[j] == key {
        count += 1
        j += 1
      }
      let address = IPv4ClientRun.client(key)
      if address != client {
        client = address
        servicesOfClient.removeAll(keepingCapacity: true)
      }
      let service = backendTallies[Int(IPv4ClientRun.backend(key))].service
      let kept: Bool
      if let known = servicesOfClient.first(where: { $0.service == service }) {
        kept = known.kept
      } else {
        kept = clientsOf[Int(service)] < cap
        if kept { clientsOf[Int(service)] += 1 }
        servicesOfClient.append((service, kept))
      }
      if kept {
        keys.append(key)
        counts.append(count)
      } else {
        serviceTallies[Int(service)].droppedClientConnections += Int(count)
      }
    }
    ipv4Clients.keys = keys
    ipv4Clients.counts = counts
  }

  /// One client–backend count of a folded run, in a service's numbers.
  struct RunEntry: Sendable {
    var client: UInt32
    /// The backend's position in its service's list.
    var position: Int32
    var count: Int32
  }

  /// A folded run's entries by service (`backendMap`: its backend numbers to this analyzer's,
  /// `nil` for its own), each service's in ascending client order.
  func entriesByService(_ run: IPv4ClientRun, backendMap: [Int32]?, position: [Int32]) -> [[RunEntry]] {
    var byService = [[RunEntry]](repeating: [], count: serviceIndex.count)
    for (key, count) in zip(run.keys, run.counts) {
      let theirs = IPv4ClientRun.backend(key)
      let backend = backendMap.map { $0[Int(theirs)] } ?? theirs
      byService[Int(backendTallies[Int(backend)].service)].append(
        RunEntry(client: IPv4ClientRun.client(key), position: position[Int(backend)], count: count))
    }
    return byService
  }

  /// Several lists in ascending client order merged into one.
  static func mergeByClient(_ lists: [[RunEntry]]) -> [RunEntry] {
    var lists = lists.filter { !$0.isEmpty }
    while lists.count > 1 {
      var next: [[RunEntry]] = []
      var k = 0
      while k + 1 < lists.count {
        let a = lists[k]
        let b = lists[k + 1]
        var merged: [RunEntry] = []
        merged.reserveCapacity(a.count + b.count)
        var i = 0
        var j = 0
        while i < a.count && j < b.count {
          if a[i].client <= b[j].client {
            merged.append(a[i])
            i += 1
          } else {
            merged.append(b[j])
            j += 1
          }
        }
        merged.append(contentsOf: a[i...])
        merged.append(contentsOf: b[j...])
        next.append(merged)
        k += 2
      }
      if k < lists.count { next.append(lists[k]) }
      lists = next
    }
    return lists.first ?? []
  }
}

/// Least-significant-digit radix sort of 64-bit keys by bytes.
enum RadixSort {
  /// Sorts `keys` ascending. One pass counts every byte position; a position where all keys
  /// have the same byte (the unused high bits of a backend number, a client prefix shared by
  /// every address) is skipped, so keys with few distinct bits take few passes.
  static func sort(_ keys: inout [UInt64]) {
    let n = keys.count
    guard n > 64 else {
      keys.sort()
      return
    }
    var histogram = [Int](repeating: 0, count: 8 * 256)
    keys.withUnsafeBufferPointer { source in
      histogram.withUnsafeMutableBufferPointer { h in
        for key in source {
          h[Int(key & 0xFF)] += 1
          h[256 + Int(key >> 8 & 0xFF)] += 1
          h[512 + Int(key >> 16 & 0xFF)] += 1
          h[768 + Int(key >> 24 & 0xFF)] += 1
          h[1024 + Int(key >> 32 & 0xFF)] += 1
          h[1280 + Int(key >> 40 & 0xFF)] += 1
          h[1536 + Int(key >> 48 & 0xFF)] += 1
          h[1792 + Int(key >> 56)] += 1
        }
      }
    }
    var scratch = [UInt64](repeating: 0, count: n)
    var inScratch = false
    for digit in 0..<8 {
      let shift = UInt64(digit * 8)
      let base = digit * 256
      let first = Int(keys[0] >> shift & 0xFF)
      if histogram[base + first] == n { continue }
      var offsets = [Int](repeating: 0, count: 256)
      var sum = 0
      for b in 0..<256 {
        offsets[b] = sum
        sum += histogram[base + b]
      }
      func scatter(_ from: UnsafeBufferPointer<UInt64>, _ to: UnsafeMutableBufferPointer<UInt64>) {
        offsets.withUnsafeMutableBufferPointer { o in
          for key in from {
            let b = Int(key >> shift & 0xFF)
            to[o[b]] = key
            o[b] += 1
          }
        }
      }
      if inScratch {
        scratch.withUnsafeBufferPointer { from in keys.withUnsafeMutableBufferPointer { scatter(from, $0) } }
      } else {
        keys.withUnsafeBufferPointer { from in scratch.withUnsafeMutableBufferPointer { scatter(from, $0) } }
      }
      inScratch.toggle()
    }
    if inScratch { swap(&keys, &scratch) }
  }
}
