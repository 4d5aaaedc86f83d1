/// The IPv4 clients of DNATed connections from readers' IPv4 fast lane (`IPv4Observation`),
/// counted by sorting instead of hashing.
///
/// Each connection appends one integer, client << 32 | backend, to `pending`; a fold sorts them
/// (radix sort: a few sequential passes) and adds them to `byService`: per service, each (client,
/// backend) once with its connections, ascending. A hash table of a large conntrack table's
/// clients costs a cache miss or two per connection wherever it lives; here every pass is
/// sequential, and because each service's list is sorted by client, the parts several threads
/// read are joined by merging, not by looking every client up again. Memory stays bounded by
/// the distinct (client, backend) pairs plus `pendingLimit` connections, as a hash table's would
/// by its clients.
struct IPv4ClientRun: Sendable {
  /// One (client, backend) pair of a service with its connections; `backend` in the numbers of
  /// the analyzer that folded it.
  struct Entry: Sendable {
    var client: UInt32
    var backend: Int32
    var count: Int32
  }

  /// Connections since the last fold: client address << 32 | backend (route) number.
  var pending: [UInt64] = []
  /// Folded, by service number: each (client, backend) once, ascending by client, then backend.
  var byService: [[Entry]] = []

  /// A fold starts when this many connections are pending (8 MiB of keys).
  static let pendingLimit = 1 << 20

  @inline(__always)
  static func key(client: UInt32, backend: Int32) -> UInt64 {
    UInt64(client) << 32 | UInt64(UInt32(bitPattern: backend))
  }

  @inline(__always)
  static func client(_ key: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: key >> 32) }

  @inline(__always)
  static func backend(_ key: UInt64) -> Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: key)) }

  /// `old` and `new` (each ascending, each pair once) as one list, counts of the same pair added,
  /// keeping the first `cap` clients; also the connections of the clients left out.
  static func merge(_ old: [Entry], _ new: [Entry], cap: Int) -> (entries: [Entry], dropped: Int) {
    var entries: [Entry] = []
    entries.reserveCapacity(max(old.count, new.count))
    var dropped = 0
    var clients = 0
    var last: UInt32? = nil
    var i = 0
    var j = 0
    while i < old.count || j < new.count {
      var entry: Entry
      if j >= new.count
        || (i < old.count && (old[i].client, old[i].backend) < (new[j].client, new[j].backend))
      {
        entry = old[i]
        i += 1
      } else if i >= old.count || (new[j].client, new[j].backend) < (old[i].client, old[i].backend) {
        entry = new[j]
        j += 1
      } else {
        entry = old[i]
        entry.count += new[j].count
        i += 1
        j += 1
      }
      if entry.client != last {
        last = entry.client
        clients += 1
      }
      if clients > cap {
        dropped += Int(entry.count)
      } else {
        entries.append(entry)
      }
    }
    return (entries, dropped)
  }
}

extension ConnectionAnalyzer {
  /// Sorts the pending IPv4 connections into the folded lists, keeping at most
  /// `maxClientsPerService` clients per service: the lowest addresses, which makes the choice
  /// independent of the order connections arrived in. A client past the cap, now or at a later
  /// fold when lower addresses have come, has all its connections counted as dropped; so every
  /// connection is either a kept client's or dropped, and a kept client's counts are complete.
  mutating func foldIPv4Clients() {
    guard !ipv4Clients.pending.isEmpty else { return }
    let pending = RadixSort.sorted(taking: &ipv4Clients.pending)
    // The sorted connections, each pair once with its count, into their services' lists (each
    // ascending, as the whole is).
    var fresh = [[IPv4ClientRun.Entry]](repeating: [], count: serviceTallies.count)
    var j = 0
    while j < pending.count {
      let key = pending[j]
      var count: Int32 = 0
      while j < pending.count && pending[j] == key {
        count += 1
        j += 1
      }
      let backend = IPv4ClientRun.backend(key)
      fresh[Int(backendTallies[Int(backend)].service)].append(
        IPv4ClientRun.Entry(client: IPv4ClientRun.client(key), backend: backend, count: count))
    }
    let cap = options.maxClientsPerService
    while ipv4Clients.byService.count < serviceTallies.count { ipv4Clients.byService.append([]) }
    for s in fresh.indices where !fresh[s].isEmpty {
      if ipv4Clients.byService[s].isEmpty && fresh[s].count <= cap {
        ipv4Clients.byService[s] = fresh[s]  // no more pairs than the cap: no more clients either
      } else {
        let (entries, dropped) = IPv4ClientRun.merge(ipv4Clients.byService[s], fresh[s], cap: cap)
        ipv4Clients.byService[s] = entries
        serviceTallies[s].droppedClientConnections += dropped
      }
    }
  }

  /// A service's folded lists from several analyzers, each with the positions of its backend
  /// numbers in the service's list of backends.
  typealias RunLists = [(entries: [IPv4ClientRun.Entry], positionOf: [Int32])]

  /// A service's lists (`RunLists`, each ascending by client) merged by client: each `next`
  /// takes the lowest client at the lists' heads with its entries from every list.
  struct ClientWalk {
    let runs: RunLists
    var heads: [Int]

    init(_ runs: RunLists) {
      self.runs = runs
      heads = [Int](repeating: 0, count: runs.count)
    }

    /// The next client and its connections, its (backend position, connections) appended to
    /// `entries`, in list order; `nil` after the last.
    @inline(__always)
    mutating func next(appendingTo entries: inout [(index: Int32, count: Int32)]) -> (
      client: UInt32, total: Int32
    )? {
      // The lowest client at the heads (past the last: UInt64, above any address).
      var lowest = UInt64.max
      for r in runs.indices where heads[r] < runs[r].entries.count {
        lowest = min(lowest, UInt64(runs[r].entries[heads[r]].client))
      }
      guard lowest != UInt64.max else { return nil }
      let client = UInt32(lowest)
      var total: Int32 = 0
      for r in runs.indices {
        var h = heads[r]
        while h < runs[r].entries.count && runs[r].entries[h].client == client {
          let entry = runs[r].entries[h]
          entries.append((runs[r].positionOf[Int(entry.backend)], entry.count))
          total += entry.count
          h += 1
        }
        heads[r] = h
      }
      return (client, total)
    }
  }
}

/// The original sources behind translated (SNAT) addresses from readers' IPv4 fast lane, kept
/// as `IPv4ClientRun` keeps clients: one integer per connection, translated address number <<
/// 32 | original source, sorted and made unique by a fold.
struct IPv4SourceRun: Sendable {
  /// Connections since the last fold.
  var pending: [UInt64] = []
  /// Folded: each (translated address, source) once, ascending.
  var keys: [UInt64] = []

  /// A fold starts when this many connections are pending, as for clients.
  static var pendingLimit: Int { IPv4ClientRun.pendingLimit }

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
    let pending = RadixSort.sorted(taking: &ipv4Sources.pending)
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
}

/// Least-significant-digit radix sort of 64-bit keys by bytes.
enum RadixSort {
  /// `keys` sorted, leaving `keys` empty (its storage is handed over, not copied).
  static func sorted(taking keys: inout [UInt64]) -> [UInt64] {
    var taken: [UInt64] = []
    swap(&taken, &keys)
    sort(&taken)
    return taken
  }

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
