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
/// flows finishing in that time.
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

  struct Group {
    var legs: [FlowRecord]
    var lastAdded: Int64
    var paired = false
  }

  var pending: [UInt64: Group] = [:]
  public private(set) var joinedConnections = 0
  public private(set) var oneLegConnections = 0
  /// Cookies of joined connections, by frontend and backend.
  public var cookies = CookieAffinityTracker()

  public init() {}

  /// Takes a finished flow; emits observations for groups that are complete.
  public mutating func add(_ flow: FlowRecord, emit: (ConnectionObservation) -> Void) {
    guard flow.joinKey != 0 else {
      resolve([flow], emit: emit)
      return
    }
    if var group = pending.removeValue(forKey: flow.joinKey) {
      // A second leg with another tuple completes the usual pair (before and after DNAT); the
      // group then waits only `pairHold` for a third (after SNAT).
      if group.legs.contains(where: { $0.tuple != flow.tuple && $0.key.proto == flow.key.proto }) {
        group.paired = true
      }
      group.legs.append(flow)
      group.lastAdded = max(group.lastAdded, flow.lastSeen)
      pending[flow.joinKey] = group
    } else {
      pending[flow.joinKey] = Group(legs: [flow], lastAdded: flow.lastSeen)
      if pending.count > maxPending { resolveOldest(emit: emit) }
    }
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
    var groups: [(start: Int64, packet: Int, legs: [FlowRecord])] = []
    groups.reserveCapacity(done.count)
    for key in done {
      guard let group = pending.removeValue(forKey: key) else { continue }
      var start = Int64.max
      var packet = Int.max
      for leg in group.legs where (leg.firstSeen, leg.firstPacket) < (start, packet) {
        start = leg.firstSeen
        packet = leg.firstPacket
      }
      groups.append((start, packet, group.legs))
    }
    groups.sort { ($0.start, $0.packet) < ($1.start, $1.packet) }
    for group in groups { resolve(group.legs, emit: emit) }
  }

  /// Splits a group into connections (legs starting within `window` of the first) and emits one
  /// observation per connection.
  mutating func resolve(_ legs: [FlowRecord], emit: (ConnectionObservation) -> Void) {
    // Legs by position: a FlowRecord is a few hundred bytes, not worth moving around.
    let order = legs.indices.sorted {
      (legs[$0].firstSeen, legs[$0].firstPacket) < (legs[$1].firstSeen, legs[$1].firstPacket)
    }
    var cluster: [Int] = []
    for i in order {
      if let first = cluster.first,
        legs[i].firstSeen &- legs[first].firstSeen > window || legs[i].key.proto != legs[first].key.proto
      {
        emit(observation(legs, cluster))
        cluster.removeAll(keepingCapacity: true)
      }
      cluster.append(i)
    }
    if !cluster.isEmpty { emit(observation(legs, cluster)) }
  }

  /// The observation of one connection: `legs[cluster]`, the first being the original leg.
  mutating func observation(_ legs: [FlowRecord], _ cluster: [Int]) -> ConnectionObservation {
    let o = cluster[0]
    let originalTuple = legs[o].tuple
    var t = o
    for i in cluster.dropFirst() where legs[i].tuple != originalTuple { t = i }
    let translatedTuple = legs[t].tuple
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
    if cluster.contains(where: { legs[$0].icmpUnreachable }) { observation.replied = false }
    observation.handshakeRTTNanos = legs[t].handshakeRTT ?? legs[o].handshakeRTT
    let requests = cluster.map { legs[$0].httpRequests }.max() ?? 0
    if requests > 0 { observation.httpRequests = Int(requests) }
    // Cookie affinity needs both ends: the Service address asked for and the backend reached.
    if translatedTuple.destination != originalTuple.destination {
      var seen: [UInt64] = []
      for i in cluster {
        for pair in legs[i].cookiePairs where !seen.contains(pair.name) {
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
