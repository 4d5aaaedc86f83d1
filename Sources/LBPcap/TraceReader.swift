import LBCore

/// Settings of a trace analysis.
public struct TraceOptions: Sendable {
  /// A `pcap-filter(7)` expression; only matching frames are analysed.
  public var filter: String?
  /// Flows tracked at once (see `FlowTable`); about 300 bytes each.
  public var maxFlows = 1_000_000
  /// Source addresses examined for hidden hosts (see `HostEvidenceTable`); about 900 bytes each.
  public var maxHostAddresses = HostEvidenceTable.defaultMaxAddresses
  public init() {}
}

/// How far reading has got, for a progress line.
public struct TraceProgress: Sendable {
  public var bytesRead: Int
  /// Sum of the files' sizes; 0 when unknown (pipes).
  public var bytesTotal: Int
  public var packets: Int
}

/// Counts over a whole trace, beyond each file's `InputSummary`.
public struct TraceTotals: Sendable {
  public var packets = 0
  public var ipPackets = 0
  public var nonIP = 0
  public var fragments = 0
  public var filteredOut = 0
  public var copies: UInt64 = 0
  public var tunnelled = 0
  public var icmpErrors = 0
  public var flows = 0
  public var flowsEvictedByLimit = 0
  public var joinedConnections = 0
  public var oneLegConnections = 0
}

/// Reads one or more capture files merged by time, decodes each packet, tracks flows, joins NAT
/// legs and hands each connection to `observe` as a `ConnectionObservation`.
///
/// Files are read in chunks; packets are decoded into one reused `DecodedPacket`; only the flow
/// table and the join's pending legs grow, each with a bound.
public final class TraceReader {
  public let options: TraceOptions
  let readers: [CaptureFileReader]
  let filter: BPFFilter?
  public private(set) var totals = TraceTotals()
  /// Hosts estimated behind each source address with at least two connections, after `run`.
  public private(set) var hostEstimates: [HostEstimate] = []
  /// Affinity cookies found in plaintext HTTP, after `run`.
  public private(set) var cookieAffinity: [CookieAffinityObservation] = []

  /// Opens every file (so a missing one fails before any work) and compiles the filter.
  public init(paths: [String], options: TraceOptions = TraceOptions()) throws(PcapError) {
    self.options = options
    var readers: [CaptureFileReader] = []
    for path in paths { readers.append(try CaptureFileReader(path: path)) }
    self.readers = readers
    filter = try options.filter.map { (expression) throws(PcapError) in try BPFFilter(expression: expression)
    }
  }

  /// The files' summaries, in the order given, with the trace's notes added to the first.
  public var summaries: [InputSummary] { readers.map(\.summary) }

  /// Reads everything. `progress` is called about every 256k packets.
  public func run(
    progress: ((TraceProgress) -> Void)? = nil, observe: (ConnectionObservation) -> Void
  ) throws(PcapError) {
    let table = FlowTable(maxFlows: options.maxFlows, maxHostAddresses: options.maxHostAddresses)
    var joiner = NATJoiner()
    joiner.maxPending = options.maxFlows
    var decoder = PacketDecoder()
    var heads: [CapturedPacket?] = []
    for reader in readers { heads.append(try reader.next()) }
    let bytesTotal = readers.reduce(0) { $0 + $1.fileSize }
    var lastSweep: Int64 = Int64.min
    var sinceSweep = 0
    var totals = TraceTotals()
    var now: Int64 = 0
    let hosts = table.hosts
    func finish(_ flow: FlowRecord) {
      hosts.finished(flow)
      joiner.add(flow, emit: observe)
    }

    while true {
      // The earliest packet among the files (a handful: a linear scan beats a heap), and the
      // next one among the others, which the picked file's packets are read up to.
      var pick = -1
      var earliest = Int64.max
      var other = (time: Int64.max, file: Int.max)
      for i in heads.indices {
        guard let head = heads[i] else { continue }
        if pick < 0 || head.timestamp < earliest {
          if pick >= 0 { other = (earliest, pick) }
          pick = i
          earliest = head.timestamp
        } else if (head.timestamp, i) < other {
          other = (head.timestamp, i)
        }
      }
      guard pick >= 0, var frame = heads[pick] else { break }
      let reader = readers[pick]
      // The picked file's packets while they stay the earliest (ties go to the lower file
      // number): with one file, all of them without going back through `heads`, whose copies,
      // uniqueness checks and reader retains were about 6% of the instructions per packet.
      while true {
        totals.packets += 1
        if frame.timestamp > now { now = frame.timestamp }

        if let filter, !(try filter.matches(frame)) {
          totals.filteredOut += 1
        } else {
          switch decoder.decode(frame) {
          case .ip:
            totals.ipPackets += 1
            if decoder.packet.tunnels > 0 { totals.tunnelled += 1 }
            if decoder.packet.icmpError {
              totals.icmpErrors += 1
              table.noteICMPError(decoder.packet)
            } else if !decoder.packet.fragment || decoder.packet.firstFragment {
              table.add(decoder.packet, time: frame.timestamp, input: Int32(pick), number: frame.number)
              if !table.finished.isEmpty { table.takeFinished(finish) }
            } else {
              totals.fragments += 1
            }
            if decoder.packet.firstFragment { totals.fragments += 1 }
          case .notIP:
            totals.nonIP += 1
          case .fragment:
            totals.fragments += 1
          case .issue(let kind, let reason):
            reader.record(kind, packet: frame.number, reason)
          }
        }

        // Progress every 256k packets; a sweep of the table every half second of capture time (so
        // closed flows leave within 1.5 s) or every 4M packets, whichever comes first. A sweep
        // visits every flow, so sweeping more often costs more than it saves.
        sinceSweep += 1
        if sinceSweep & 0x3FFFF == 0, let progress {
          progress(
            TraceProgress(
              bytesRead: readers.reduce(0) { $0 + $1.bytesConsumed }, bytesTotal: bytesTotal,
              packets: totals.packets))
        }
        if lastSweep == Int64.min { lastSweep = now }
        if now &- lastSweep > 500_000_000 || sinceSweep >= 4_194_304 {
          table.sweep(now: now, finish: finish)
          joiner.flush(now: now, emit: observe)
          lastSweep = now
          sinceSweep = 0
        }
        guard let next = try reader.next() else {
          heads[pick] = nil
          break
        }
        guard (next.timestamp, pick) < other else {
          heads[pick] = next
          break
        }
        frame = next
      }
    }
    table.finishAll(finish: finish)
    joiner.flush(now: nil, emit: observe)

    hostEstimates = hosts.estimates()
    cookieAffinity = joiner.cookies.results(strings: table.httpStrings)
    totals.copies = table.copies
    totals.flows = table.flowsStarted
    totals.flowsEvictedByLimit = table.evictedByLimit
    totals.joinedConnections = joiner.joinedConnections
    totals.oneLegConnections = joiner.oneLegConnections
    self.totals = totals
    if let first = readers.first {
      first.note(
        "\(totals.packets) packets in \(readers.count) file(s): \(totals.ipPackets) IP, \(totals.nonIP) not IP, \(totals.fragments) fragments (counted, not reassembled), \(totals.tunnelled) decapsulated from tunnels, \(totals.copies) copies of packets seen on several interfaces counted once"
      )
      first.note(
        "\(totals.flows) flows; \(totals.joinedConnections) connections joined across NAT (before and after DNAT/SNAT), \(totals.oneLegConnections) seen on one leg only"
      )
      if totals.filteredOut > 0, let filter {
        first.note("\(totals.filteredOut) packets left out by --filter '\(filter.expression)'")
      }
      if totals.flowsEvictedByLimit > 0 {
        first.note(
          "flow table limit of \(options.maxFlows) reached: \(totals.flowsEvictedByLimit) idle flows were finished early, so long connections may count more than once"
        )
      }
      if hosts.addressesDropped > 0 {
        first.note(
          "hidden-host evidence kept for \(hosts.maxAddresses) source addresses; \(hosts.addressesDropped) further addresses were not examined"
        )
      }
      if joiner.resolvedByLimit > 0 {
        first.note(
          "NAT join limit of \(options.maxFlows) waiting legs reached: \(joiner.resolvedByLimit) legs were reported without waiting for a partner, so some connections may count on one leg only"
        )
      }
      if totals.icmpErrors > 0 { first.note("\(totals.icmpErrors) ICMP errors attributed to their flows") }
    }
    for reader in readers where reader.droppedByInterfaces > 0 {
      reader.note(
        "the capturing interfaces dropped \(reader.droppedByInterfaces) packets: counts are lower bounds")
    }
  }
}
