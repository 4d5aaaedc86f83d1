import LBCore

/// The bidirectional flow table: open addressing with linear probing over a power-of-two slot
/// array, flows stored densely. Lookups hash a `FlowKey` of integers, so a packet costs no
/// allocation; the table grows (rarely) by doubling.
///
/// Memory is bounded by `maxFlows` (about 300 bytes per flow with its slots). When a new flow
/// would exceed it, the oldest-idle tenth of the flows is finished early (`evictedByLimit`
/// counts them, and the report says so). Flows also finish when they close (FIN both ways or
/// RST) and stay quiet for `closedGrace` (1 s: a closing's last ACK and its copies follow within an RTT), or stay quiet for `idleTimeout`; finished flows go to
/// `finish` (`sweep`, `finishAll`) or wait in `finished` (`add`).
///
/// Its stored counters and tables are `@exclusivity(unchecked)`: the table is owned by one
/// decoding thread and its methods never hold an access to one of them across a call that
/// touches the same one, and the runtime's dynamic checks of those accesses (a thread-local
/// access set per read and write) were about 5% of the decoding thread's time on a 10,000,000-
/// packet capture. `CaptureFileReader` and `HostEvidenceTable` do the same for their cursors
/// and counts.
public final class FlowTable {
  public var maxFlows: Int
  /// Capture-time nanoseconds a closed flow lingers for late ACKs and copies.
  public var closedGrace: Int64 = 1_000_000_000
  /// Capture-time nanoseconds after which a quiet flow is finished.
  public var idleTimeout: Int64 = 300_000_000_000
  /// A SYN nobody answered is finished after this long (a later retry would start a new flow).
  public var unansweredTimeout: Int64 = 60_000_000_000
  /// Two packets with the same signature within this window are copies of one packet.
  public var copyWindow: Int64 = 50_000_000

  @exclusivity(unchecked) public private(set) var count = 0
  @exclusivity(unchecked) public private(set) var evictedByLimit = 0
  @exclusivity(unchecked) public private(set) var flowsStarted = 0
  @exclusivity(unchecked) public private(set) var copies: UInt64 = 0
  /// Per source address evidence of hidden hosts, fed from the originators' packets.
  public let hosts: HostEvidenceTable
  /// Cookie names and values seen in HTTP heads.
  public let httpStrings = HTTPStrings()

  @exclusivity(unchecked) var records: UnsafeMutablePointer<FlowRecord>
  @exclusivity(unchecked) var recordCapacity: Int
  /// Slot → record index + 1 (0 = empty).
  @exclusivity(unchecked) var slots: UnsafeMutablePointer<Int32>
  @exclusivity(unchecked) var slotMask: Int
  /// Flows that `add` finished (a new connection on a finished one's ports, or room made at
  /// `maxFlows`), in the order they finished, for the caller to take with `takeFinished` after
  /// each `add`. A list rather than a callback: a closure handed to the per-packet call cost a
  /// retain and a release of everything it captures on every packet, though flows finish there
  /// rarely.
  @exclusivity(unchecked) public private(set) var finished: [FlowRecord] = []

  public init(maxFlows: Int = 1_000_000, maxHostAddresses: Int = HostEvidenceTable.defaultMaxAddresses) {
    self.maxFlows = max(16, maxFlows)
    hosts = HostEvidenceTable(maxAddresses: maxHostAddresses)
    recordCapacity = 1024
    records = .allocate(capacity: recordCapacity)
    slotMask = 4095
    slots = .allocate(capacity: slotMask + 1)
    slots.initialize(repeating: 0, count: slotMask + 1)
  }

  deinit {
    records.deinitialize(count: count)
    records.deallocate()
    slots.deallocate()
  }

  // MARK: - Storage

  /// The slot that holds `key`, or the empty slot where it would go.
  @inline(__always)
  func slot(for key: FlowKey) -> (slot: Int, found: Bool) {
    var s = Int(truncatingIfNeeded: key.tableHash) & slotMask
    while true {
      let entry = slots[s]
      if entry == 0 { return (s, false) }
      if records[Int(entry) - 1].key == key { return (s, true) }
      s = (s + 1) & slotMask
    }
  }

  func insert(_ record: FlowRecord, at slot: Int) -> Int {
    if count == recordCapacity {
      // Doubling, but never past `maxFlows` (plus one, should a caller insert at the limit):
      // a table that stops at 100,000 flows does not hold room for 131,072.
      let capacity = max(count + 1, min(recordCapacity * 2, maxFlows))
      let grown = UnsafeMutablePointer<FlowRecord>.allocate(capacity: capacity)
      grown.moveInitialize(from: records, count: count)
      records.deallocate()
      records = grown
      recordCapacity = capacity
    }
    (records + count).initialize(to: record)
    slots[slot] = Int32(count + 1)
    count += 1
    flowsStarted += 1
    if count * 2 > slotMask + 1 { rehash(slotCount: (slotMask + 1) * 2) }
    return count - 1
  }

  func rehash(slotCount: Int) {
    slots.deallocate()
    slotMask = slotCount - 1
    slots = .allocate(capacity: slotCount)
    slots.initialize(repeating: 0, count: slotCount)
    for i in 0..<count {
      var s = Int(truncatingIfNeeded: records[i].key.tableHash) & slotMask
      while slots[s] != 0 { s = (s + 1) & slotMask }
      slots[s] = Int32(i + 1)
    }
  }

  /// Removes the flow at `index` (moving the last flow into its place) and returns it.
  func remove(at index: Int) -> FlowRecord {
    let removed = records[index]
    deleteSlot(slot(for: removed.key).slot)
    let last = count - 1
    if index != last {
      let moved = records[last]
      let movedSlot = slot(for: moved.key).slot
      records[index] = moved
      slots[movedSlot] = Int32(index + 1)
    }
    (records + last).deinitialize(count: 1)
    count -= 1
    return removed
  }

  /// Deletes a slot with backward-shift deletion, so linear probing needs no tombstones.
  func deleteSlot(_ hole: Int) {
    var hole = hole
    var s = (hole + 1) & slotMask
    while slots[s] != 0 {
      let home = Int(truncatingIfNeeded: records[Int(slots[s]) - 1].key.tableHash) & slotMask
      // Move the entry back if its home is not cyclically within (hole, s].
      let distanceToEntry = (s - home) & slotMask
      let distanceToHole = (s - hole) & slotMask
      if distanceToEntry >= distanceToHole {
        slots[hole] = slots[s]
        hole = s
      }
      s = (s + 1) & slotMask
    }
    slots[hole] = 0
  }

  // MARK: - Packets

  /// Accounts one decoded IP packet with transport ports to its flow. Flows this finishes are
  /// left in `finished`.
  @inline(__always)
  public func add(_ p: DecodedPacket, time: Int64, input: Int32, number: Int) {
    let (key, sourceIsA) = FlowKey.make(
      v6: p.v6, proto: p.proto, source: p.source, sourcePort: p.sourcePort,
      destination: p.destination, destinationPort: p.destinationPort)
    let isTCP = p.proto == 6
    let syn = isTCP && p.tcpFlags & (TCPFlags.syn | TCPFlags.ack) == TCPFlags.syn
    var (s, found) = slot(for: key)
    var index = 0
    if found {
      index = Int(slots[s]) - 1
      // A new SYN on a closed flow, or with another initial sequence number, is a new connection
      // on the same ports (port reuse).
      // Read through the pointer: copying a whole record per packet costs more than the lookup.
      let r = records + index
      let fromOriginator = r.pointee.originatorIsA == sourceIsA
      if syn
        && (r.pointee.closed || (r.pointee.sawSYN && fromOriginator && r.pointee.isn != p.seq)
          || (!fromOriginator && !r.pointee.sawSYN))
      {
        finished.append(remove(at: index))
        (s, _) = slot(for: key)
        found = false
      }
    }
    if !found {
      if count >= maxFlows {
        evictOldest()
        (s, _) = slot(for: key)
      }
      // The originator: the SYN's sender; the SYN-ACK's receiver; otherwise the sender of the
      // first packet, unless it comes from a well-known port to an ephemeral one.
      var originatorIsSource = true
      if isTCP && p.tcpFlags & (TCPFlags.syn | TCPFlags.ack) == TCPFlags.syn | TCPFlags.ack {
        originatorIsSource = false
      } else if !syn && p.sourcePort < 1024 && p.destinationPort >= 1024 {
        originatorIsSource = false
      }
      var record = FlowRecord(
        key: key, originatorIsA: originatorIsSource == sourceIsA, input: input, firstPacket: number,
        firstSeen: time, lastSeen: time)
      if originatorIsSource {
        record.firstTTL = p.ttl
        record.firstIPID = p.ipID
        record.hasTimestamps = p.hasTimestamp
        record.firstTSValue = p.tsValue
        record.tsFirstTime = time
        record.joinKey = Self.joinKey(p)
      } else if isTCP && p.tcpFlags & TCPFlags.syn != 0 {
        // Only the SYN-ACK was seen: the originator's ISN is one below what it acknowledges.
        record.joinKey = Self.tcpJoinKey(isn: p.ack &- 1, v6: p.v6)
      }
      // One dictionary lookup per flow; its packets then use the slot.
      record.hostSlot = hosts.slot(originatorIsSource ? p.source : p.destination, v6: p.v6)
      index = insert(record, at: s)
    }
    update(&records[index], p, time: time, sourceIsA: sourceIsA)
  }

  /// The key that finds the other NAT leg of the flow this packet starts. kube-proxy's NAT
  /// rewrites addresses and ports but not TCP sequence numbers, IP IDs or payloads.
  @inline(__always)
  static func joinKey(_ p: DecodedPacket) -> UInt64 {
    if p.proto == 6 {
      return p.tcpFlags & TCPFlags.syn != 0 ? tcpJoinKey(isn: p.seq, v6: p.v6) : 0
    }
    var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(p.proto) << 56
    h = (h ^ UInt64(p.ipID)) &* 0x100_0000_01B3
    h = (h ^ UInt64(p.payloadLength)) &* 0x100_0000_01B3
    if p.proto == 1 || p.proto == 58 {
      h = (h ^ UInt64(p.sourcePort) << 16 ^ UInt64(p.seq)) &* 0x100_0000_01B3
    }
    h = (h ^ (p.payload.u64(0) ?? UInt64(p.payload.count))) &* 0x100_0000_01B3
    h = (h ^ (p.payload.u64(8) ?? 0)) &* 0x100_0000_01B3
    return h | 1
  }

  @inline(__always)
  static func tcpJoinKey(isn: UInt32, v6: Bool) -> UInt64 {
    (UInt64(isn) << 8 | 6 | (v6 ? 0x80 : 0)) | 1 << 63
  }

  /// Signature of a packet for recognising its copies: fields forwarding keeps and a
  /// retransmission changes (IP ID, TCP timestamps, sequence numbers, the first payload bytes).
  /// Not the IP checksum (routing between two captured interfaces decrements the TTL) nor the
  /// TCP/UDP checksum (with checksum offload, a copy captured on its way out holds only the
  /// pseudo-header sum).
  @inline(__always)
  static func signature(_ p: DecodedPacket) -> UInt64 {
    var h = UInt64(p.ipID) << 32
    h ^= p.payload.u64(0) ?? 0
    h = (h ^ UInt64(p.seq) << 32 ^ UInt64(p.ack)) &* 0x9E37_79B9_7F4A_7C15
    h ^= UInt64(p.tsValue) << 24 ^ UInt64(p.payloadLength) << 8 ^ UInt64(p.tcpFlags)
    return (h ^ (h >> 31)) | 1
  }

  @inline(__always)
  func update(_ r: inout FlowRecord, _ p: DecodedPacket, time: Int64, sourceIsA: Bool) {
    let fromOriginator = r.originatorIsA == sourceIsA
    let sig = Self.signature(p)
    // Copies: the same packet on the bridge port, the bridge and the veth (`tcpdump -i any`).
    if fromOriginator {
      if (r.recent.0 == sig && time &- r.recentTime.0 <= copyWindow)
        || (r.recent.1 == sig && time &- r.recentTime.1 <= copyWindow)
      {
        r.copies &+= 1
        copies &+= 1
        if time > r.lastSeen { r.lastSeen = time }
        return
      }
      r.recent.1 = r.recent.0
      r.recentTime.1 = r.recentTime.0
      r.recent.0 = sig
      r.recentTime.0 = time
    } else {
      if (r.recent.2 == sig && time &- r.recentTime.2 <= copyWindow)
        || (r.recent.3 == sig && time &- r.recentTime.3 <= copyWindow)
      {
        r.copies &+= 1
        copies &+= 1
        if time > r.lastSeen { r.lastSeen = time }
        return
      }
      r.recent.3 = r.recent.2
      r.recentTime.3 = r.recentTime.2
      r.recent.2 = sig
      r.recentTime.2 = time
    }
    if time > r.lastSeen { r.lastSeen = time }
    let length = UInt64(p.ipLength)
    if fromOriginator {
      r.packets.0 &+= 1
      r.bytes.0 &+= length
    } else {
      r.packets.1 &+= 1
      r.bytes.1 &+= length
    }
    if fromOriginator && r.hostSlot >= 0 { hostEvidence(&r, p, time: time) }
    guard p.proto == 6 else { return }
    tcp(&r, p, time: time, fromOriginator: fromOriginator)
  }

  /// Hidden-host evidence from one originator packet (not a copy): connection openings give
  /// TTL, fingerprint and port; every IPv4 packet its IP ID; timestamps their clock.
  @inline(__always)
  func hostEvidence(_ r: inout FlowRecord, _ p: DecodedPacket, time: Int64) {
    let slot = r.hostSlot
    if p.proto == 6 {
      if p.tcpFlags & (TCPFlags.syn | TCPFlags.ack) == TCPFlags.syn && !r.sawSYN {
        let tag = UInt16(
          truncatingIfNeeded: (p.destination.low ^ p.destination.high) &* 0x9E37_79B9_7F4A_7C15 >> 48)
        hosts.syn(slot, p, destinationTag: tag ^ p.destinationPort)
      } else if r.packets.0 == 1 && !r.sawSYN {
        hosts.firstPacket(slot, p)
      }
      if p.hasTimestamp {
        r.tsLastValue = p.tsValue
        r.tsLastTime = time
      }
    } else if r.packets.0 == 1 {
      hosts.firstPacket(slot, p)
    }
    if !p.v6 && p.ipID != 0 { hosts.ipID(slot, UInt16(truncatingIfNeeded: p.ipID), port: p.sourcePort) }
  }

  /// The head of the first data segment each way: request headers feed host evidence and
  /// cookies; a response's `Set-Cookie` feeds cookies.
  func httpHead(_ r: inout FlowRecord, _ payload: ByteView, fromOriginator: Bool) {
    if fromOriginator {
      r.sawRequestHead = true
      guard HTTP.startsWithMethod(payload, at: 0) else { return }
      if r.hostSlot >= 0 { hosts.request(r.hostSlot, payload) }
    } else {
      r.sawResponseHead = true
      guard payload.matches("HTTP/1.", at: 0) else { return }
    }
    let strings = httpStrings
    HTTP.headers(payload) { field, start, end in
      guard field == .cookie || field == .setCookie else { return }
      HTTP.cookiePairs(payload, start, end, firstOnly: field == .setCookie) { ns, ne, vs, ve in
        r.addCookie(name: strings.intern(payload, ns, ne), value: strings.intern(payload, vs, ve))
      }
    }
  }

  @inline(__always)
  func tcp(_ r: inout FlowRecord, _ p: DecodedPacket, time: Int64, fromOriginator: Bool) {
    let flags = p.tcpFlags
    let syn = flags & TCPFlags.syn != 0
    let ackFlag = flags & TCPFlags.ack != 0
    let upper: UInt8 = fromOriginator ? 0 : 0x20
    if syn && !ackFlag && fromOriginator {
      if !r.sawSYN {
        r.sawSYN = true
        r.isn = p.seq
        r.synWindow = p.window
        r.synMSS = p.mss
        r.synWindowScale = p.windowScale
      }
      // Karn: a retransmitted SYN restarts the handshake clock.
      if !r.sawSYNACK { r.synTime = time }
      r.addHistory(UInt8(ascii: "S"))
    } else if syn && ackFlag && !fromOriginator {
      if !r.sawSYNACK {
        r.sawSYNACK = true
        r.synAckTime = time
      }
      r.addHistory(UInt8(ascii: "h"))
    } else if ackFlag && fromOriginator && r.sawSYNACK && !r.handshakeDone && !syn {
      r.handshakeDone = true
    }
    if flags & TCPFlags.rst != 0 {
      if fromOriginator { r.rstOriginator = true } else { r.rstResponder = true }
      r.addHistory(UInt8(ascii: "R") | upper)
    }
    if flags & TCPFlags.fin != 0 {
      if fromOriginator { r.finOriginator = true } else { r.finResponder = true }
      r.addHistory(UInt8(ascii: "F") | upper)
    }
    let payload = p.payloadLength
    if payload > 0 {
      r.addHistory(UInt8(ascii: "D") | upper)
      if !r.sawSYN && !r.sawSYNACK, !fromOriginator || r.packets.1 > 0 { r.handshakeDone = true }
    } else if ackFlag && !syn && flags & (TCPFlags.fin | TCPFlags.rst) == 0 {
      r.addHistory(UInt8(ascii: "A") | upper)
    }
    // Retransmissions: a segment that ends at or below the highest end already seen.
    let span = UInt32(truncatingIfNeeded: payload) &+ (syn ? 1 : 0) &+ (flags & TCPFlags.fin != 0 ? 1 : 0)
    if span > 0 {
      let end = p.seq &+ span
      var retransmitted = false
      if fromOriginator {
        if r.seqKnown.0 && Int32(bitPattern: end &- r.seqEnd.0) <= 0 {
          retransmitted = true
        } else {
          r.seqEnd.0 = end
          r.seqKnown.0 = true
        }
      } else {
        if r.seqKnown.1 && Int32(bitPattern: end &- r.seqEnd.1) <= 0 {
          retransmitted = true
        } else {
          r.seqEnd.1 = end
          r.seqKnown.1 = true
        }
      }
      if retransmitted {
        r.retransmissions &+= 1
        r.addHistory(UInt8(ascii: "T") | upper)
      } else if payload > 0 {
        if fromOriginator {
          r.httpRequests &+= HTTP.requestCount(p.payload)
          if !r.sawRequestHead { httpHead(&r, p.payload, fromOriginator: true) }
        } else if !r.sawResponseHead {
          httpHead(&r, p.payload, fromOriginator: false)
        }
      }
    }
  }

  /// Marks the flow an ICMP error quotes (the quoted packet's own direction).
  public func noteICMPError(_ p: DecodedPacket) {
    let q = p.quoted
    let (key, _) = FlowKey.make(
      v6: q.v6, proto: q.proto, source: q.source, sourcePort: q.sourcePort,
      destination: q.destination, destinationPort: q.destinationPort)
    let (s, found) = slot(for: key)
    guard found else { return }
    if p.icmpUnreachable { records[Int(slots[s]) - 1].icmpUnreachable = true }
  }

  // MARK: - Finishing

  /// Finishes flows that closed and went quiet, or went quiet for long, as of capture time `now`.
  public func sweep(now: Int64, finish: (FlowRecord) -> Void) {
    takeFinished(finish)  // those `add` finished first, so none is left behind
    var i = 0
    while i < count {
      let r = records[i]
      let quiet = now &- r.lastSeen
      let unanswered = r.packets.1 == 0 && quiet > unansweredTimeout
      if (r.closed && quiet > closedGrace) || quiet > idleTimeout || unanswered {
        finish(remove(at: i))
      } else {
        i += 1
      }
    }
  }

  /// Finishes every flow (end of input), oldest first.
  public func finishAll(finish: (FlowRecord) -> Void) {
    takeFinished(finish)  // those `add` finished first, so none is left behind
    // Sorts positions, not records: a sorted copy of a full table (about 360 bytes a flow,
    // plus the sort's scratch) would add half again to the peak memory of a flow flood.
    // Ties keep table order, as the stable sort of records did.
    let table = records
    var order = [Int32](repeating: 0, count: count)
    for i in order.indices { order[i] = Int32(i) }
    order.sort {
      (table[Int($0)].firstSeen, table[Int($0)].firstPacket, $0)
        < (table[Int($1)].firstSeen, table[Int($1)].firstPacket, $1)
    }
    for i in order { finish(table[Int(i)]) }
    records.deinitialize(count: count)
    count = 0
    slots.update(repeating: 0, count: slotMask + 1)
  }

  /// Hands the flows in `finished` to `finish`, in the order they finished, and empties it.
  public func takeFinished(_ finish: (FlowRecord) -> Void) {
    for flow in finished { finish(flow) }
    // Room made at `maxFlows` finishes a tenth of the table at once; that much is not kept.
    finished.removeAll(keepingCapacity: finished.count <= 64)
  }

  /// Makes room: finishes (into `finished`) the tenth of the flows that have been idle longest.
  func evictOldest() {
    var times: [Int64] = []
    times.reserveCapacity(count)
    for i in 0..<count { times.append(records[i].lastSeen) }
    times.sort()
    let threshold = times[max(0, count / 10 - 1)]
    var i = 0
    while i < count {
      if records[i].lastSeen <= threshold {
        evictedByLimit += 1
        finished.append(remove(at: i))
      } else {
        i += 1
      }
    }
  }
}
