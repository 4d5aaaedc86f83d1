/// An IPv4 connection with ports, as most lines of a conntrack table describe one, in 80 bytes
/// and without optionals: what a reader's fast path hands to a sink
/// (`ObservationSink.add(contentsOf:input:)`) instead of a `ConnectionObservation`.
///
/// It says exactly what the `ConnectionObservation` from `observation(input:)` says. A table of
/// a million entries is read through these: building, copying and taking apart an observation of
/// about 250 bytes, with its optionals and address enums, cost more than parsing the line.
public struct IPv4Observation: Sendable, Equatable {
  /// Which of the optional facts are present.
  public struct Flags: OptionSet, Sendable, Equatable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// The responder answered (conntrack: no `[UNREPLIED]`).
    @inlinable public static var replied: Flags { Flags(rawValue: 1 << 0) }
    @inlinable public static var assured: Flags { Flags(rawValue: 1 << 1) }
    /// `originalPackets` and `originalBytes` were given.
    @inlinable public static var originalCounters: Flags { Flags(rawValue: 1 << 2) }
    /// `replyPackets` and `replyBytes` were given.
    @inlinable public static var replyCounters: Flags { Flags(rawValue: 1 << 3) }
    @inlinable public static var mark: Flags { Flags(rawValue: 1 << 4) }
    @inlinable public static var zone: Flags { Flags(rawValue: 1 << 5) }
  }

  // `ConnectionObservation.original`.
  public var originalSource: UInt32 = 0
  public var originalDestination: UInt32 = 0
  // `ConnectionObservation.translated`: conntrack's reply tuple reversed.
  public var translatedSource: UInt32 = 0
  public var translatedDestination: UInt32 = 0
  public var originalSourcePort: UInt16 = 0
  public var originalDestinationPort: UInt16 = 0
  public var translatedSourcePort: UInt16 = 0
  public var translatedDestinationPort: UInt16 = 0
  /// A protocol with ports (TCP, UDP, …).
  public var proto: TransportProtocol = .tcp
  /// `ConnectionState.rawValue`, or `noState`.
  public var stateCode: UInt8 = IPv4Observation.noState
  public var flags: Flags = []
  public var zone: UInt16 = 0
  public var mark: UInt32 = 0
  /// 1-based line of the input.
  public var line: Int = 0
  public var originalPackets: UInt64 = 0
  public var originalBytes: UInt64 = 0
  public var replyPackets: UInt64 = 0
  public var replyBytes: UInt64 = 0

  @inlinable public static var noState: UInt8 { 0xFF }

  @inlinable public init() {}

  @inlinable public var state: ConnectionState? {
    stateCode == IPv4Observation.noState ? nil : ConnectionState(rawValue: stateCode)
  }

  /// `ConnectionObservation.isSourceTranslated`.
  @inlinable public var isSourceTranslated: Bool { originalSource != translatedSource }

  /// `ConnectionObservation.isDestinationTranslated`.
  @inlinable public var isDestinationTranslated: Bool {
    originalDestination != translatedDestination || originalDestinationPort != translatedDestinationPort
  }

  /// `ConnectionObservation.failed`.
  @inlinable public var failed: Bool {
    ConnectionObservation.failed(
      proto: proto, state: state, replied: flags.contains(.replied), assured: flags.contains(.assured))
  }

  /// The same connection as a `ConnectionObservation`, located at `input`, `line`.
  public func observation(input: Int) -> ConnectionObservation {
    let original = FiveTuple(
      proto: proto, source: Endpoint(.v4(IPv4Address(originalSource)), originalSourcePort),
      destination: Endpoint(.v4(IPv4Address(originalDestination)), originalDestinationPort))
    let translated = FiveTuple(
      proto: proto, source: Endpoint(.v4(IPv4Address(translatedSource)), translatedSourcePort),
      destination: Endpoint(.v4(IPv4Address(translatedDestination)), translatedDestinationPort))
    var observation = ConnectionObservation(
      original: original, translated: translated, state: state, replied: flags.contains(.replied),
      assured: flags.contains(.assured), location: SourceLocation(input: input, line: line))
    observation.mark = flags.contains(.mark) ? mark : nil
    observation.zone = flags.contains(.zone) ? zone : nil
    if flags.contains(.originalCounters) {
      observation.originalCounters = Counters(packets: originalPackets, bytes: originalBytes)
    }
    if flags.contains(.replyCounters) {
      observation.replyCounters = Counters(packets: replyPackets, bytes: replyBytes)
    }
    return observation
  }
}
