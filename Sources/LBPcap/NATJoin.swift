import LBCore

/// Joins the legs of one connection that NAT split into several flows: on a node, `tcpdump -i
/// any` sees the client's packets to the Service address before DNAT and the same packets to
/// the Pod (perhaps from a masqueraded source) after it.
///
/// Legs are joined when they share a join key (TCP: the client's initial sequence number,
/// which kube-proxy's NAT never rewrites; others: IP ID, length and the first payload bytes of
/// the first packet), the protocol, and start within `window` of each other. The leg seen first
/// is the original (the capture tap sits before netfilter on the way in); the last leg whose
/// tuple differs is the translated one. A flow with no partner is reported as it is: a
/// connection without NAT, or one leg of a capture taken on one side only.
///
/// Memory: a pair of legs is resolved as soon as its second leg finishes; a leg without a
/// partner waits in `pending` for `hold` of capture time, so the set is bounded by the one-leg
/// flows finishing in that time. Waiting legs live in a `LegStore` whose positions are reused,
/// so it holds as many records as were ever waiting at once.
public struct NATJoiner {
  /// Legs of one connection start within this many nanoseconds of each other.
  public var window: Int64 = 2_000_000_000
  /// A group is resolved once no leg has joined it for this long.
  public var hold: Int64 = 5_000_000_000
  /// A group that already has two tuples waits this long (and until the next sweep) for more: with masquerade a node sees
  /// three (client → Service, client → Pod after DNAT on a bridge, node → Pod after SNAT).
  public var pairHold: Int64 = 100_000_000
  /// Most legs waiting for a partner. Past it (a flood of one-leg flows within `hold`), the tenth
  /// that waited longest is resolved at once, as connections seen on one leg.
  public var maxPending = 1_000_000
  /// Groups resolved early because `maxPending` was reached.
  public private(set) var resolvedByLimit = 0

  /// A join key's legs waiting for partners: a chain through `legs` in the order they
  /// finished.
  struct Group {
    var first: Int32
    var last: Int32
    var lastAdded: Int64
    var paired = false
  }

  var pending: [UInt64: Group] = [:]
  /// Waiting legs, by position: a finished flow is copied in once and read in place from then on
  /// (a `FlowRecord` is a few hundred bytes; moving whole records between per-group arrays,
  /// sorts and clusters was most of the join's cost). Positions of resolved legs are reused.
  var legs = LegStore()
  /// The next leg of the same group, by position (-1: the group's last).
  var nextLeg: [Int32] = []
  var freeLegs: [Int32] = []
  /// Scratch for `resolve`: one group's legs, then one connection's.
  var order: [Int32] = []
  var cluster: [Int32] = []
  public private(set) var joinedConnections = 0
  public private(set) var oneLegConnections = 0
  /// Cookies of joined connections, by frontend and backend.
  public var cookies = CookieAffinityTracker()

  public init() {}

  /// Takes a finished flow; emits observations for groups that are complete.
  public mutating func add(_ flow: FlowRecord, emit: (ConnectionObservation) -> Void) {
    let leg = store(flow)
    guard flow.joinKey != 0 else {
      resolve(first: leg, emit: emit)
      return
    }
    if let i = pending.index(forKey: flow.joinKey) {
      var group = pending.values[i]
      // A second leg with another tuple completes the usual pair (before and after DNAT); the
      // group then waits only `pairHold` for a third (after SNAT).
      if !group.paired {
        let tuple = flow.tuple
        var at = group.first
        while at >= 0 {
          if legs[Int(at)].key.proto == flow.key.proto && legs[Int(at)].tuple != tuple {
            group.paired = true
            break
          }
          at = nextLeg[Int(at)]
        }
      }
      nextLeg[Int(group.last)] = leg
      group.last = leg
      group.lastAdded = max(group.lastAdded, flow.lastSeen)
      pending.values[i] = group
    } else {
      pending[flow.joinKey] = Group(first: leg, last: leg, lastAdded: flow.lastSeen)
      if pending.count > maxPending { resolveOldest(emit: emit) }
    }
  }

  /// Copies a flow into a free position of `legs`, as a group of its own.
  mutating func store(_ flow: FlowRecord) -> Int32 {
    if let free = freeLegs.popLast() {
      legs[Int(free)] = flow
      nextLeg[Int(free)] = -1
      return free
    }
    legs.append(flow)
    nextLeg.append(-1)
    return Int32(nextLeg.count - 1)
  }

  /// Resolves the tenth of `pending` that waited longest (at least one group).
  mutating func resolveOldest(emit: (ConnectionObservation) -> Void) {
    var times = pending.values.map(\.lastAdded)
    times.sort()
    let cutoff = times[min(times.count - 1, max(0, times.count / 10 - 1))]
    let before = pending.count
    resolve(keys: pending.compactMap { $0.value.lastAdded <= cutoff ? $0.key : nil }, emit: emit)
    resolvedByLimit += before - pending.count
  }

  /// Resolves groups nobody joined for `hold` before capture time `now` (all when `now` is nil).
  public mutating func flush(now: Int64?, emit: (ConnectionObservation) -> Void) {
    var done: [UInt64] = []
    for (key, group) in pending
    where now.map({ $0 &- group.lastAdded > (group.paired ? pairHold : hold) }) ?? true {
      done.append(key)
    }
    resolve(keys: done, emit: emit)
  }

  /// Removes the groups under `keys` from `pending` and resolves them in a deterministic order:
  /// by the first leg's start.
  mutating func resolve(keys done: [UInt64], emit: (ConnectionObservation) -> Void) {
    guard !done.isEmpty else { return }
    var groups: [(start: Int64, packet: Int, first: Int32)] = []
    groups.reserveCapacity(done.count)
    for key in done {
      guard let group = pending.removeValue(forKey: key) else { continue }
      var start = Int64.max
      var packet = Int.max
      var at = group.first
      while at >= 0 {
        let (seen, number) = (legs[Int(at)].firstSeen, legs[Int(at)].firstPacket)
        if (seen, number) < (start, packet) {
          start = seen
          packet = number
        }
        at = nextLeg[Int(at)]
      }
      groups.append((start, packet, group.first))
    }
    groups.sort { ($0.start, $0.packet) < ($1.start, $1.packet) }
    for group in groups { resolve(first: group.first, emit: emit) }
  }

  /// Splits the group whose chain starts at `first` into connections (legs starting within
  /// `window` of the first), emits one observation per connection and frees the legs.
  mutating func resolve(first: Int32, emit: (ConnectionObservation) -> Void) {
    order.removeAll(keepingCapacity: true)
    var at = first
    while at >= 0 {
      order.append(at)
      at = nextLeg[Int(at)]
    }
    // By start; the sort is stable, so legs that start together keep the order they finished in.
    // A pair (the usual group) needs one compare, not a sort.
    if order.count == 2 {
      let (a, b) = (Int(order[0]), Int(order[1]))
      if (legs[b].firstSeen, legs[b].firstPacket) < (legs[a].firstSeen, legs[a].firstPacket) {
        order.swapAt(0, 1)
      }
    } else if order.count > 2 {
      let legs = self.legs
      order.sort {
        (legs[Int($0)].firstSeen, legs[Int($0)].firstPacket) < (
          legs[Int($1)].firstSeen, legs[Int($1)].firstPacket
        )
      }
    }
    cluster.removeAll(keepingCapacity: true)
    for i in order {
      if let first = cluster.first,
        legs[Int(i)].firstSeen &- legs[Int(first)].firstSeen > window
          || legs[Int(i)].key.proto != legs[Int(first)].key.proto
      {
        emit(observation(cluster))
        cluster.removeAll(keepingCapacity: true)
      }
      cluster.append(i)
    }
    if !cluster.isEmpty { emit(observation(cluster)) }
    freeLegs.append(contentsOf: order)
  }

  /// The observation of one connection: `legs[cluster]`, the first being the original leg.
  mutating func observation(_ cluster: [Int32]) -> ConnectionObservation {
    let o = Int(cluster[0])
    let originalTuple = legs[o].tuple
    var t = o
    for i in cluster.dropFirst() where legs[Int(i)].tuple != originalTuple { t = Int(i) }
    let translatedTuple = t == o ? originalTuple : legs[t].tuple
    if cluster.count > 1 && translatedTuple != originalTuple {
      joinedConnections += 1
    } else {
      oneLegConnections += 1
    }
    var observation = ConnectionObservation(
      original: originalTuple, translated: translatedTuple, state: legs[t].state,
      replied: legs[t].replied, assured: legs[t].assured,
      originalCounters: Counters(packets: legs[t].packets.0, bytes: legs[t].bytes.0),
      replyCounters: Counters(packets: legs[t].packets.1, bytes: legs[t].bytes.1),
      location: SourceLocation(input: Int(legs[o].input), line: legs[o].firstPacket))
    var requests: UInt32 = 0
    for i in cluster {
      if legs[Int(i)].icmpUnreachable { observation.replied = false }
      requests = max(requests, legs[Int(i)].httpRequests)
    }
    observation.handshakeRTTNanos = legs[t].handshakeRTT ?? legs[o].handshakeRTT
    if requests > 0 { observation.httpRequests = Int(requests) }
    // Cookie affinity needs both ends: the Service address asked for and the backend reached.
    // Cookies fill a record's slots in order, so an empty first slot means none.
    if translatedTuple.destination != originalTuple.destination {
      var seen: [UInt64] = []
      for i in cluster where legs[Int(i)].cookies.0 != 0 {
        for pair in legs[Int(i)].cookiePairs where !seen.contains(pair.name) {
          seen.append(pair.name)
          cookies.add(
            frontend: originalTuple.destination, proto: originalTuple.proto,
            backend: translatedTuple.destination, name: pair.name, value: pair.value)
        }
      }
    }
    return observation
  }
}

/// Flow records by position, in blocks of 4096 that never move: one growing array would, at
/// each doubling, briefly hold its old and its new storage, which put the peak memory of a flow
/// flood (every leg waiting for a partner) over its bound (`scripts/bench-flood`).
struct LegStore {
  static let blockShift = 12
  static let blockMask = 1 << blockShift - 1
  var blocks: [[FlowRecord]] = []

  subscript(position: Int) -> FlowRecord {
    get { blocks[position >> Self.blockShift][position & Self.blockMask] }
    set { blocks[position >> Self.blockShift][position & Self.blockMask] = newValue }
  }

  /// Adds a record at the next position.
  mutating func append(_ record: FlowRecord) {
    if blocks.last.map({ $0.count == 1 << Self.blockShift }) ?? true {
      blocks.append([])
      blocks[blocks.count - 1].reserveCapacity(1 << Self.blockShift)
    }
    blocks[blocks.count - 1].append(record)
  }
}
