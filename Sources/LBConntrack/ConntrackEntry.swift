import LBCore

/// The event an entry of `conntrack -E` reports; `nil` for table dumps.
public enum ConntrackEvent: UInt8, Sendable {
  case new, update, destroy
}

/// One direction's tuple as conntrack prints it (`src= dst= sport= dport=` and, for ICMP,
/// `type= code= id=`), with that direction's counters.
public struct ConntrackTuple: Sendable, Hashable {
  public var source: IPAddress?
  public var destination: IPAddress?
  public var sourcePort: UInt16?
  public var destinationPort: UInt16?
  public var icmpType: UInt8?
  public var icmpCode: UInt8?
  public var icmpID: UInt16?
  public var packets: UInt64?
  public var bytes: UInt64?

  public init() {}

  /// The 5-tuple, when the direction is complete for its protocol.
  public func fiveTuple(_ proto: TransportProtocol) -> FiveTuple? {
    guard let source, let destination else { return nil }
    if proto.hasPorts {
      guard let sourcePort, let destinationPort else { return nil }
      return FiveTuple(
        proto: proto, source: Endpoint(source, sourcePort),
        destination: Endpoint(destination, destinationPort))
    }
    if proto == .icmp || proto == .icmpv6 {
      // The echo id names the flow in both directions; type and code differ between request
      // and reply, so they stay out of the tuple (see `FiveTuple`).
      let id = icmpID ?? 0
      return FiveTuple(
        proto: proto, source: Endpoint(source, id), destination: Endpoint(destination, id))
    }
    return FiveTuple(proto: proto, source: Endpoint(source, 0), destination: Endpoint(destination, 0))
  }
}

/// One line of `conntrack -L`, `conntrack -L -o extended`, `/proc/net/nf_conntrack`,
/// `conntrack -E`, or one `<flow>` of `-o xml`, decoded without allocation.
public struct ConntrackEntry: Sendable, Equatable {
  public var event: ConntrackEvent?
  public var proto: TransportProtocol = .tcp
  /// Seconds left before the entry expires; absent in destroy events.
  public var timeout: UInt32?
  public var state: ConnectionState?
  public var original = ConntrackTuple()
  public var reply = ConntrackTuple()
  /// `[UNREPLIED]`: no packet was seen in the reply direction.
  public var unreplied = false
  /// `[ASSURED]`: traffic seen both ways and the entry will not be dropped early.
  public var assured = false
  /// `[OFFLOAD]` or `[HW_OFFLOAD]`: the flow is handled by the flowtable.
  public var offloaded = false
  public var mark: UInt32?
  public var zone: UInt16?
  public var use: UInt32?
  public var id: UInt32?
  /// `-o timestamp` prefix on events, seconds since the epoch.
  public var eventTime: Double?
  /// 1-based line the entry came from.
  public var line: Int = 0
  /// Bare words were skipped after the tuples (vendor additions, or text pasted into the line).
  public var strayWords = false

  public init() {}

  /// The observation this entry describes, or `nil` when a tuple is incomplete.
  public func observation(input: Int) -> ConnectionObservation? {
    guard let original = original.fiveTuple(proto), let reply = reply.fiveTuple(proto) else {
      return nil
    }
    var observation = ConnectionObservation(
      conntrackOriginal: original, reply: reply, state: state, replied: !unreplied,
      assured: assured, location: SourceLocation(input: input, line: line))
    observation.mark = mark
    observation.zone = zone
    observation.originalCounters = Counters(packets: self.original.packets, bytes: self.original.bytes)
    observation.replyCounters = Counters(packets: self.reply.packets, bytes: self.reply.bytes)
    return observation
  }
}
