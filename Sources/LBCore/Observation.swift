/// Where an observation came from, so a report can point at `file:line`.
public struct SourceLocation: Hashable, Sendable {
  /// Index of the input in the order the inputs were given.
  public var input: Int
  /// 1-based line number for text inputs, packet number for captures; 0 when not applicable.
  public var line: Int

  public init(input: Int, line: Int) {
    self.input = input
    self.line = line
  }
}

/// The protocol state of a connection as the tracker named it (`ESTABLISHED`, `TIME_WAIT`, …).
///
/// TCP, SCTP and DCCP states share one type: the names do not collide where it matters and the
/// analysis only asks whether the connection was ever answered.
public enum ConnectionState: UInt8, Hashable, Sendable, CaseIterable {
  case none, synSent, synReceived, established, finWait, closeWait, lastAck, timeWait, close
  case listen, synSent2
  // SCTP
  case closed, cookieWait, cookieEchoed, shutdownSent, shutdownReceived, shutdownAckSent
  case heartbeatSent, heartbeatAcked
  // DCCP
  case request, respond, partOpen, open, closeReq, closing, timeWaitDCCP, invalid, ignore

  /// The name as conntrack prints it.
  public var name: String {
    switch self {
    case .none: "NONE"
    case .synSent: "SYN_SENT"
    case .synReceived: "SYN_RECV"
    case .established: "ESTABLISHED"
    case .finWait: "FIN_WAIT"
    case .closeWait: "CLOSE_WAIT"
    case .lastAck: "LAST_ACK"
    case .timeWait: "TIME_WAIT"
    case .close: "CLOSE"
    case .listen: "LISTEN"
    case .synSent2: "SYN_SENT2"
    case .closed: "CLOSED"
    case .cookieWait: "COOKIE_WAIT"
    case .cookieEchoed: "COOKIE_ECHOED"
    case .shutdownSent: "SHUTDOWN_SENT"
    case .shutdownReceived: "SHUTDOWN_RECD"
    case .shutdownAckSent: "SHUTDOWN_ACK_SENT"
    case .heartbeatSent: "HEARTBEAT_SENT"
    case .heartbeatAcked: "HEARTBEAT_ACKED"
    case .request: "REQUEST"
    case .respond: "RESPOND"
    case .partOpen: "PARTOPEN"
    case .open: "OPEN"
    case .closeReq: "CLOSEREQ"
    case .closing: "CLOSING"
    case .timeWaitDCCP: "TIMEWAIT"
    case .invalid: "INVALID"
    case .ignore: "IGNORE"
    }
  }

  /// States a TCP connection reaches only after the responder answered the handshake.
  public var impliesEstablished: Bool {
    switch self {
    case .established, .finWait, .closeWait, .lastAck, .timeWait: true
    case .heartbeatSent, .heartbeatAcked, .shutdownSent, .shutdownReceived, .shutdownAckSent: true
    case .open, .partOpen, .closeReq, .closing, .timeWaitDCCP: true
    default: false
    }
  }
}

/// Packet and byte counters of one direction. Either may be unknown.
public struct Counters: Hashable, Sendable {
  public var packets: UInt64?
  public var bytes: UInt64?
  public init(packets: UInt64? = nil, bytes: UInt64? = nil) {
    self.packets = packets
    self.bytes = bytes
  }
}

/// One connection as some input saw it: its original tuple (as the client sent it) and its
/// translated tuple (the same direction after NAT: what the backend receives).
///
/// Every input kind (conntrack dumps and events, the live table, packet traces) produces these,
/// so analyses never care where a fact came from.
public struct ConnectionObservation: Hashable, Sendable {
  /// The first packet's tuple, before any NAT.
  public var original: FiveTuple
  /// The same direction after NAT; equal to `original` when nothing was translated.
  public var translated: FiveTuple
  /// Protocol state when last seen, if the input names one.
  public var state: ConnectionState?
  /// Whether the responder ever answered (`nil` when the input cannot tell).
  public var replied: Bool?
  /// Whether the tracker marked the connection assured (traffic seen both ways, settled).
  public var assured: Bool
  /// Conntrack mark and zone, when present.
  public var mark: UInt32?
  public var zone: UInt16?
  public var originalCounters: Counters
  public var replyCounters: Counters
  public var location: SourceLocation
  /// SYN → SYN-ACK time toward the backend in nanoseconds, where a packet trace showed it.
  public var handshakeRTTNanos: Int64? = nil
  /// Plaintext HTTP/1.x requests the client sent on the connection, where a packet trace showed them.
  public var httpRequests: Int? = nil

  public init(
    original: FiveTuple, translated: FiveTuple, state: ConnectionState? = nil,
    replied: Bool? = nil, assured: Bool = false, mark: UInt32? = nil, zone: UInt16? = nil,
    originalCounters: Counters = Counters(), replyCounters: Counters = Counters(),
    location: SourceLocation = SourceLocation(input: 0, line: 0)
  ) {
    self.original = original
    self.translated = translated
    self.state = state
    self.replied = replied
    self.assured = assured
    self.mark = mark
    self.zone = zone
    self.originalCounters = originalCounters
    self.replyCounters = replyCounters
    self.location = location
  }

  /// Builds an observation from conntrack's two tuples: the reply tuple is what the responder
  /// sends, so the translated forward direction is its reverse.
  public init(
    conntrackOriginal original: FiveTuple, reply: FiveTuple, state: ConnectionState?,
    replied: Bool?, assured: Bool, location: SourceLocation
  ) {
    self.init(
      original: original, translated: reply.reversed, state: state, replied: replied,
      assured: assured, location: location)
  }

  /// The client as it arrived at this node.
  @inlinable public var client: Endpoint { original.source }
  /// The address the client asked for: a Service frontend when the connection was DNATed.
  @inlinable public var frontend: Endpoint { original.destination }
  /// Where the connection really went.
  @inlinable public var backend: Endpoint { translated.destination }

  /// The destination was rewritten (kube-proxy's DNAT to an endpoint).
  @inlinable public var isDestinationTranslated: Bool {
    original.destination != translated.destination
  }
  /// The source was rewritten (masquerade or SNAT); `translated.source` is what the backend saw.
  @inlinable public var isSourceTranslated: Bool {
    original.source.address != translated.source.address
  }

  /// The connection failed: never answered, or (TCP) closed before the handshake completed.
  ///
  /// A snapshot can catch a handshake in flight; such entries count as failed, because the
  /// tracker cannot tell them apart from a SYN that will never be answered.
  public var failed: Bool {
    Self.failed(proto: original.proto, state: state, replied: replied, assured: assured)
  }

  /// `failed` from its parts (shared with `IPv4Observation`).
  @inlinable
  public static func failed(proto: TransportProtocol, state: ConnectionState?, replied: Bool?, assured: Bool)
    -> Bool
  {
    if replied == false { return true }
    if proto == .tcp, let state {
      switch state {
      case .synSent, .synSent2: return true
      case .close, .synReceived: return !assured
      default: return false
      }
    }
    return false
  }
}

/// Something that consumes connection observations and can be split across threads: each
/// thread fills an empty copy, and the copies are merged at the end.
public protocol ObservationSink: Sendable {
  mutating func add(_ observation: ConnectionObservation)
  /// Adds several observations in order, as `add(_:)` one by one would. Readers hand over
  /// batches so that a sink can overlap the work of several (the analyzer starts all of a
  /// batch's table lookups before it waits for the first).
  mutating func add(contentsOf batch: [ConnectionObservation])
  /// Adds IPv4 connections of input `input` in order, as `add(_:)` of each one's
  /// `observation(input:)` would (the default does just that). Readers' fast paths hand over
  /// these; a sink that aggregates can take them without building observations.
  mutating func add(contentsOf batch: UnsafeBufferPointer<IPv4Observation>, input: Int)
  /// Adds everything `other` holds, as if its observations had been added here. `other` read a
  /// later part of the same input, numbering its lines from 1: add `lineOffset` to the line of
  /// any location it kept.
  mutating func merge(_ other: Self, lineOffset: Int)
  /// A sink with the same settings and nothing in it.
  func makeEmpty() -> Self
  /// Called by a reader that splits an input over threads, on the thread that filled this sink,
  /// once its part is read and before it is merged: work done here (sorting what was
  /// collected) runs in parallel with the other parts'. The default does nothing.
  mutating func finishPart()
}

extension ObservationSink {
  public mutating func add(contentsOf batch: [ConnectionObservation]) {
    for observation in batch { add(observation) }
  }

  public mutating func add(contentsOf batch: UnsafeBufferPointer<IPv4Observation>, input: Int) {
    for connection in batch { add(connection.observation(input: input)) }
  }

  public mutating func finishPart() {}
}

/// Collects `IPv4Observation`s for `ObservationSink.add(contentsOf:input:)`, `capacity` at a
/// time, in memory of its own (`deallocate()` when done).
public struct IPv4ObservationBatch {
  public static var capacity: Int { 256 }
  @usableFromInline let storage: UnsafeMutablePointer<IPv4Observation>
  @usableFromInline var count = 0
  public let input: Int

  public init(input: Int) {
    self.input = input
    storage = .allocate(capacity: Self.capacity)
    storage.initialize(repeating: IPv4Observation(), count: Self.capacity)
  }

  /// Adds `connection`; hands the batch to `sink` when it is full.
  @inlinable
  public mutating func add<Sink: ObservationSink>(_ connection: IPv4Observation, to sink: inout Sink) {
    storage[count] = connection
    count += 1
    if count == Self.capacity { flush(to: &sink) }
  }

  /// Hands what is collected to `sink`.
  @inlinable
  public mutating func flush<Sink: ObservationSink>(to sink: inout Sink) {
    guard count > 0 else { return }
    sink.add(contentsOf: UnsafeBufferPointer(start: storage, count: count), input: input)
    count = 0
  }

  public func deallocate() {
    storage.deinitialize(count: Self.capacity)
    storage.deallocate()
  }
}

/// Collects observations for `ObservationSink.add(contentsOf:)`, `capacity` at a time.
public struct ObservationBatch {
  public static var capacity: Int { 64 }
  public var items: [ConnectionObservation] = []

  public init() { items.reserveCapacity(Self.capacity) }

  /// Adds `observation`; hands the batch to `sink` when it is full.
  @inlinable
  public mutating func add<Sink: ObservationSink>(_ observation: ConnectionObservation, to sink: inout Sink) {
    items.append(observation)
    if items.count >= Self.capacity { flush(to: &sink) }
  }

  /// Hands what is collected to `sink`.
  @inlinable
  public mutating func flush<Sink: ObservationSink>(to sink: inout Sink) {
    guard !items.isEmpty else { return }
    sink.add(contentsOf: items)
    items.removeAll(keepingCapacity: true)
  }
}
