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
/// Memory: legs wait in `pending` only until `hold` of capture time has passed after the last
/// leg of their group finished, so the set is bounded by the connections finishing in that time.
public struct NATJoiner {
  /// Legs of one connection start within this many nanoseconds of each other.
  public var window: Int64 = 2_000_000_000
  /// A group is resolved once no leg has joined it for this long.
  public var hold: Int64 = 10_000_000_000

  struct Group {
    var legs: [FlowRecord]
    var lastAdded: Int64
  }

  var pending: [UInt64: Group] = [:]
  public private(set) var joinedConnections = 0
  public private(set) var oneLegConnections = 0

  public init() {}

  /// Takes a finished flow; emits observations for groups that are complete.
  public mutating func add(_ flow: FlowRecord, emit: (ConnectionObservation) -> Void) {
    guard flow.joinKey != 0 else {
      resolve([flow], emit: emit)
      return
    }
    pending[flow.joinKey, default: Group(legs: [], lastAdded: flow.lastSeen)].legs.append(flow)
    if let last = pending[flow.joinKey]?.lastAdded, flow.lastSeen > last {
      pending[flow.joinKey]?.lastAdded = flow.lastSeen
    }
  }

  /// Resolves groups nobody joined for `hold` before capture time `now` (all when `now` is nil).
  public mutating func flush(now: Int64?, emit: (ConnectionObservation) -> Void) {
    var done: [UInt64] = []
    for (key, group) in pending where now.map({ $0 &- group.lastAdded > hold }) ?? true {
      done.append(key)
    }
    // Deterministic output order: by the first leg's start.
    var groups = done.compactMap { pending.removeValue(forKey: $0) }
    groups.sort { lhs, rhs in
      let l = lhs.legs.map(\.firstSeen).min() ?? 0
      let r = rhs.legs.map(\.firstSeen).min() ?? 0
      return l < r
    }
    for group in groups { resolve(group.legs, emit: emit) }
  }

  /// Splits a group into connections (legs starting within `window` of the first) and emits one
  /// observation per connection.
  mutating func resolve(_ legs: [FlowRecord], emit: (ConnectionObservation) -> Void) {
    var legs = legs
    legs.sort { ($0.firstSeen, $0.firstPacket) < ($1.firstSeen, $1.firstPacket) }
    var cluster: [FlowRecord] = []
    for leg in legs {
      if let first = cluster.first,
        leg.firstSeen &- first.firstSeen > window || leg.key.proto != first.key.proto
      {
        emit(observation(cluster))
        cluster.removeAll(keepingCapacity: true)
      }
      cluster.append(leg)
    }
    if !cluster.isEmpty { emit(observation(cluster)) }
  }

  mutating func observation(_ legs: [FlowRecord]) -> ConnectionObservation {
    let original = legs[0]
    let originalTuple = original.tuple
    var translated = original
    for leg in legs.dropFirst() where leg.tuple != originalTuple { translated = leg }
    if legs.count > 1 && translated.tuple != originalTuple {
      joinedConnections += 1
    } else {
      oneLegConnections += 1
    }
    var o = ConnectionObservation(
      original: originalTuple, translated: translated.tuple, state: translated.state,
      replied: translated.replied, assured: translated.assured,
      originalCounters: Counters(packets: translated.packets.0, bytes: translated.bytes.0),
      replyCounters: Counters(packets: translated.packets.1, bytes: translated.bytes.1),
      location: SourceLocation(input: Int(original.input), line: original.firstPacket))
    if legs.contains(where: \.icmpUnreachable) { o.replied = false }
    o.handshakeRTTNanos = translated.handshakeRTT ?? original.handshakeRTT
    let requests = legs.map(\.httpRequests).max() ?? 0
    if requests > 0 { o.httpRequests = Int(requests) }
    return o
  }
}
