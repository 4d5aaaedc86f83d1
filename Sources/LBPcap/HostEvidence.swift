import LBCore

/// Packet evidence, per source address, of how many hosts send from it (hosts hidden behind a
/// NAT gateway or a node's masquerade). Fed from `FlowTable`'s per-packet path with integers
/// only: every tracked address owns a fixed slab of 96 words of small sets and runs, so a packet
/// costs a few compares and no allocation; a new address costs one dictionary insert.
///
/// Signals (theory and limits in `Sources/LBPcap/README.md`, "Hidden hosts"):
/// - distinct TTLs of connection-opening packets on one interface (initial TTL rounded up to
///   32/64/128/255, plus hop distance);
/// - distinct SYN fingerprints (initial TTL, DF, window, MSS, window scale, SACK, timestamps,
///   option order);
/// - distinct TCP timestamp clock rates measured per connection (offsets are random per
///   connection on Linux, rates are not);
/// - interleaved global IP ID counter sequences that span several connections (Bellovin 2002);
/// - interleaved increasing ephemeral source-port runs toward one destination;
/// - distinct `X-Forwarded-For`/`Forwarded`/`X-Real-IP` clients and `User-Agent` values in
///   plaintext HTTP/1.x requests.
///
/// **Bound:** `maxAddresses` addresses (default 16,384, 768 bytes each plus counters: about
/// 14 MiB); packets from further addresses are not examined and `addressesDropped` says how
/// many addresses that was.
public final class HostEvidenceTable {
  public static let defaultMaxAddresses = 16_384
  public let maxAddresses: Int
  /// Addresses past `maxAddresses`, whose packets were not examined.
  public private(set) var addressesDropped = 0

  struct Key: Hashable {
    var high: UInt64
    var low: UInt64
    var v6: Bool
  }

  struct Counts {
    var connections = 0
    var synsWithTimestamps = 0
    var synsWithoutTimestamps = 0
    var ipIDPackets = 0
    var httpRequests = 0
    /// Sets that filled up (bit per signal): their counts are lower bounds.
    var full: UInt8 = 0
  }

  // Slab layout, in 64-bit words per address.
  static let ttlAt = 0, ttlSlots = 8
  static let fingerprintAt = 8, fingerprintSlots = 8
  static let ipIDAt = 16, ipIDSlots = 8
  static let portAt = 24, portSlots = 16
  static let rateAt = 40, rateSlots = 8
  static let forwardedAt = 48, forwardedSlots = 32
  static let agentAt = 80, agentSlots = 16
  static let slab = 96

  /// A port run extends when the next SYN's port is above its last by at most this much.
  public static let portGap: UInt16 = 256
  /// An IP ID sequence extends when the next ID is above its last by at most this much.
  public static let ipIDGap: UInt16 = 256
  /// A port run counts once it holds this many connections.
  public static let minimumRun = 3
  /// An IP ID sequence counts once it spans this many connections and packets: a per-socket
  /// counter (Linux ≥ 5.17) stays within one connection, a host-wide counter does not.
  public static let minimumSequenceConnections = 4
  public static let minimumSequencePackets = 8

  var index: [Key: Int32] = [:]
  var keys: [Key] = []
  @exclusivity(unchecked) var counts: [Counts] = []
  @exclusivity(unchecked) var store: UnsafeMutablePointer<UInt64>
  var capacity: Int

  public init(maxAddresses: Int = defaultMaxAddresses) {
    self.maxAddresses = max(1, maxAddresses)
    capacity = 64
    store = .allocate(capacity: capacity * Self.slab)
    store.initialize(repeating: 0, count: capacity * Self.slab)
  }

  deinit { store.deallocate() }

  /// The slot of an address, created on first sight; -1 past `maxAddresses`. Called once per
  /// flow, not per packet.
  public func slot(_ bits: AddressBits, v6: Bool) -> Int32 {
    let key = Key(high: bits.high, low: bits.low, v6: v6)
    if let i = index[key] { return i }
    guard keys.count < maxAddresses else {
      addressesDropped += 1
      return -1
    }
    if keys.count == capacity {
      let grown = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity * 2 * Self.slab)
      grown.moveInitialize(from: store, count: capacity * Self.slab)
      (grown + capacity * Self.slab).initialize(repeating: 0, count: capacity * Self.slab)
      store.deallocate()
      store = grown
      capacity *= 2
    }
    let i = Int32(keys.count)
    keys.append(key)
    counts.append(Counts())
    index[key] = i
    return i
  }

  /// Adds `value` (non-zero) to the set of `slots` words at `at`; sets `fullBit` when no room.
  @inline(__always)
  func insert(_ value: UInt64, _ i: Int32, at: Int, slots: Int, fullBit: UInt8) {
    let base = store + Int(i) * Self.slab + at
    for k in 0..<slots {
      let v = base[k]
      if v == value { return }
      if v == 0 {
        base[k] = value
        return
      }
    }
    counts[Int(i)].full |= fullBit
  }

  /// Rounds a received TTL up to the initial value stacks use (RFC 1700 era defaults).
  @inline(__always)
  public static func initialTTL(_ ttl: UInt8) -> UInt8 {
    ttl <= 32 ? 32 : ttl <= 64 ? 64 : ttl <= 128 ? 128 : 255
  }

  // MARK: - Per packet

  /// A connection's first SYN from address slot `i`; `destinationTag` identifies where it went
  /// (ports are chosen per destination).
  @inline(__always)
  func syn(_ i: Int32, _ p: DecodedPacket, destinationTag: UInt16) {
    counts[Int(i)].connections += 1
    if p.hasTimestamp {
      counts[Int(i)].synsWithTimestamps += 1
    } else {
      counts[Int(i)].synsWithoutTimestamps += 1
    }
    ttl(i, p)
    // Stack fingerprint (p0f-like): everything the SYN's sender chose.
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    h = (h ^ UInt64(Self.initialTTL(p.ttl)) ^ (p.dontFragment ? 0x100 : 0)) &* 0x100_0000_01B3
    h = (h ^ UInt64(p.window) << 16 ^ UInt64(p.mss)) &* 0x100_0000_01B3
    h =
      (h ^ UInt64(p.windowScale) ^ (p.sackPermitted ? 0x100 : 0) ^ (p.hasTimestamp ? 0x200 : 0))
      &* 0x100_0000_01B3
    h = (h ^ p.tcpOptionKinds) &* 0x100_0000_01B3
    insert(h | 1, i, at: Self.fingerprintAt, slots: Self.fingerprintSlots, fullBit: 2)
    port(i, p.sourcePort, destinationTag: destinationTag)
  }

  /// The first packet of a connection without SYN (UDP, or TCP picked up mid-stream).
  @inline(__always)
  func firstPacket(_ i: Int32, _ p: DecodedPacket) {
    counts[Int(i)].connections += 1
    ttl(i, p)
  }

  @inline(__always)
  func ttl(_ i: Int32, _ p: DecodedPacket) {
    let interface = UInt64(UInt32(bitPattern: p.linkInterface &+ 1) & 0xFFFF)
    insert(1 << 40 | interface << 16 | UInt64(p.ttl), i, at: Self.ttlAt, slots: Self.ttlSlots, fullBit: 1)
  }

  /// Ephemeral-port runs: `used | destinationTag << 32 | connections << 16 | last port`.
  @inline(__always)
  func port(_ i: Int32, _ port: UInt16, destinationTag: UInt16) {
    let base = store + Int(i) * Self.slab + Self.portAt
    var best = -1
    var bestDelta = UInt16.max
    var empty = -1
    var weakest = 0
    var weakestCount = UInt64.max
    for k in 0..<Self.portSlots {
      let v = base[k]
      if v == 0 {
        if empty < 0 { empty = k }
        continue
      }
      let n = (v >> 16) & 0xFFFF
      if n < weakestCount {
        weakestCount = n
        weakest = k
      }
      guard UInt16(truncatingIfNeeded: v >> 32) == destinationTag else { continue }
      let delta = port &- UInt16(truncatingIfNeeded: v)
      if delta == 0 { return }
      if delta <= Self.portGap && delta < bestDelta {
        best = k
        bestDelta = delta
      }
    }
    if best >= 0 {
      let n = min((base[best] >> 16) & 0xFFFF + 1, 0xFFFF)
      base[best] = 1 << 63 | UInt64(destinationTag) << 32 | n << 16 | UInt64(port)
      return
    }
    if empty < 0 {
      counts[Int(i)].full |= 4
      empty = weakest
    }
    base[empty] = 1 << 63 | UInt64(destinationTag) << 32 | 1 << 16 | UInt64(port)
  }

  /// IPv4 IP ID sequences: `used | connections << 44 | packets << 32 | last port << 16 | last ID`.
  @inline(__always)
  func ipID(_ i: Int32, _ id: UInt16, port: UInt16) {
    counts[Int(i)].ipIDPackets += 1
    let base = store + Int(i) * Self.slab + Self.ipIDAt
    var best = -1
    var bestDelta = UInt16.max
    var empty = -1
    var weakest = 0
    var weakestPackets = UInt64.max
    for k in 0..<Self.ipIDSlots {
      let v = base[k]
      if v == 0 {
        if empty < 0 { empty = k }
        continue
      }
      let last = UInt16(truncatingIfNeeded: v)
      // The same ID again (the packet's other NAT leg) or a slightly older one (reordering).
      if last &- id <= 64 { return }
      let delta = id &- last
      if delta <= Self.ipIDGap && delta < bestDelta {
        best = k
        bestDelta = delta
      }
      let packets = (v >> 32) & 0xFFF
      if packets < weakestPackets {
        weakestPackets = packets
        weakest = k
      }
    }
    if best >= 0 {
      let v = base[best]
      let packets = min((v >> 32) & 0xFFF + 1, 0xFFF)
      var connections = (v >> 44) & 0xFFF
      if UInt16(truncatingIfNeeded: v >> 16) != port { connections = min(connections + 1, 0xFFF) }
      base[best] = 1 << 63 | connections << 44 | packets << 32 | UInt64(port) << 16 | UInt64(id)
      return
    }
    if empty < 0 { empty = weakest }
    base[empty] = 1 << 63 | 1 << 44 | 1 << 32 | UInt64(port) << 16 | UInt64(id)
  }

  /// A finished connection's timestamp clock rate, measured over at least a second.
  public func finished(_ flow: FlowRecord) {
    let i = flow.hostSlot
    guard i >= 0, flow.tsLastTime > flow.tsFirstTime else { return }
    let seconds = Double(flow.tsLastTime - flow.tsFirstTime) / 1e9
    let ticks = flow.tsLastValue &- flow.firstTSValue
    guard seconds >= 1, ticks > 0, ticks < 0x8000_0000 else { return }
    insert(
      1 << 40 | UInt64(Self.clockRate(Double(ticks) / seconds)), i, at: Self.rateAt, slots: Self.rateSlots,
      fullBit: 8)
  }

  /// A measured rate snapped to the clock a stack uses (RFC 7323 §5.4 allows 1 ms to 1 s per
  /// tick; Linux uses 1000 Hz since 4.13, older stacks 100, 250 or 300 Hz, some 10 Hz).
  public static func clockRate(_ hz: Double) -> Int {
    for known in [1.0, 10, 100, 250, 300, 1000] where abs(hz - known) <= known * 0.1 {
      return Int(known)
    }
    // Two significant digits otherwise.
    var scale = 1.0
    while hz / scale >= 100 { scale *= 10 }
    return Int((hz / scale).rounded() * scale)
  }

  // MARK: - HTTP

  /// The header block of a plaintext HTTP/1.x request from address slot `i`.
  func request(_ i: Int32, _ payload: ByteView) {
    guard HTTP.startsWithMethod(payload, at: 0) else { return }
    counts[Int(i)].httpRequests += 1
    HTTP.headers(payload) { name, start, end in
      switch name {
      case .xForwardedFor, .xRealIP:
        // The left-most element names the original client (RFC 7239 §5.2 for the list form).
        let e = HTTP.trimmed(payload, start, HTTP.firstListElementEnd(payload, start, end))
        if e.1 > e.0 {
          insert(
            HTTP.hash(payload, e.0, e.1) | 1, i, at: Self.forwardedAt, slots: Self.forwardedSlots, fullBit: 16
          )
        }
      case .forwarded:
        if let e = HTTP.forwardedFor(payload, start, HTTP.firstListElementEnd(payload, start, end)) {
          insert(
            HTTP.hash(payload, e.0, e.1) | 1, i, at: Self.forwardedAt, slots: Self.forwardedSlots, fullBit: 16
          )
        }
      case .userAgent:
        let e = HTTP.trimmed(payload, start, end)
        if e.1 > e.0 {
          insert(HTTP.hash(payload, e.0, e.1) | 1, i, at: Self.agentAt, slots: Self.agentSlots, fullBit: 32)
        }
      default:
        break
      }
    }
  }

  // MARK: - Estimates

  /// Distinct non-zero words of one set.
  func distinct(_ i: Int, at: Int, slots: Int) -> [UInt64] {
    var out: [UInt64] = []
    let base = store + i * Self.slab + at
    for k in 0..<slots where base[k] != 0 { out.append(base[k]) }
    return out
  }

  /// One estimate per address with at least `minimumConnections` connections, sorted by
  /// address.
  public func estimates(minimumConnections: Int = 2) -> [HostEstimate] {
    var out: [HostEstimate] = []
    for (i, key) in keys.enumerated() {
      let c = counts[i]
      guard c.connections >= minimumConnections else { continue }
      var hosts = 1
      var evidence: [String] = []
      func note(_ n: Int, _ fullBit: UInt8, _ text: String) {
        hosts = max(hosts, n)
        evidence.append((c.full & fullBit != 0 ? "≥" : "") + text)
      }
      // TTLs: per interface, distinct values (initial TTL and hop distance).
      let ttls = distinct(i, at: Self.ttlAt, slots: Self.ttlSlots)
      var perInterface: [UInt64: [UInt8]] = [:]
      for v in ttls { perInterface[(v >> 16) & 0xFFFF, default: []].append(UInt8(truncatingIfNeeded: v)) }
      if let most = perInterface.values.max(by: { $0.count < $1.count }) {
        let described = most.sorted().map {
          "\($0) (initial \(Self.initialTTL($0)), \(Self.initialTTL($0) - $0) hops)"
        }
        note(
          most.count, 1,
          "\(most.count) distinct TTL(s) on one interface: \(described.joined(separator: ", "))")
      }
      let fingerprints = distinct(i, at: Self.fingerprintAt, slots: Self.fingerprintSlots).count
      if fingerprints > 0 {
        var text =
          "\(fingerprints) SYN fingerprint(s) (initial TTL, DF, window, MSS, window scale, SACK, timestamps, option order)"
        if c.synsWithTimestamps > 0 && c.synsWithoutTimestamps > 0 {
          text += "; \(c.synsWithTimestamps) SYNs with TCP timestamps, \(c.synsWithoutTimestamps) without"
        }
        note(fingerprints, 2, text)
      }
      let rates = distinct(i, at: Self.rateAt, slots: Self.rateSlots).map { Int($0 & 0xFF_FFFF_FFFF) }
        .sorted()
      if !rates.isEmpty {
        note(
          rates.count, 8,
          "\(rates.count) TCP timestamp clock rate(s): \(rates.map { "\($0) Hz" }.joined(separator: ", "))")
      }
      let sequences = distinct(i, at: Self.ipIDAt, slots: Self.ipIDSlots).filter {
        ($0 >> 44) & 0xFFF >= UInt64(Self.minimumSequenceConnections)
          && ($0 >> 32) & 0xFFF >= UInt64(Self.minimumSequencePackets)
      }.count
      if !key.v6 && c.ipIDPackets > 0 {
        if sequences > 0 {
          note(
            sequences, 0,
            "\(sequences) interleaved IP ID counter sequence(s) spanning ≥ \(Self.minimumSequenceConnections) connections each"
          )
        } else {
          evidence.append(
            "IP IDs show no host-wide counter (per-connection counters, as Linux ≥ 5.17 uses, or random IDs): no evidence either way"
          )
        }
      }
      var runsPerDestination: [UInt64: Int] = [:]
      for v in distinct(i, at: Self.portAt, slots: Self.portSlots)
      where (v >> 16) & 0xFFFF >= UInt64(Self.minimumRun) {
        runsPerDestination[(v >> 32) & 0xFFFF, default: 0] += 1
      }
      if let runs = runsPerDestination.values.max() {
        note(
          runs, 4,
          "\(runs) interleaved increasing ephemeral-port run(s) (≥ \(Self.minimumRun) connections each) toward one destination"
        )
      }
      let forwarded = distinct(i, at: Self.forwardedAt, slots: Self.forwardedSlots).count
      if forwarded > 0 {
        note(
          forwarded, 16,
          "\(forwarded) distinct client(s) in X-Forwarded-For/Forwarded/X-Real-IP over \(c.httpRequests) HTTP request head(s) (each NAT leg counts)"
        )
      }
      let agents = distinct(i, at: Self.agentAt, slots: Self.agentSlots).count
      if agents > 0 {
        note(
          agents, 32,
          "\(agents) distinct User-Agent value(s) over \(c.httpRequests) HTTP request head(s) (each NAT leg counts)"
        )
      }
      let address = AddressBits(high: key.high, low: key.low).address(v6: key.v6)
      out.append(
        HostEstimate(address: address, connections: c.connections, estimatedHosts: hosts, evidence: evidence))
    }
    return out.sorted { $0.address < $1.address }
  }
}
