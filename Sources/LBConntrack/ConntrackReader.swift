import LBCore
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// Why a conntrack input could not be read at all. Damage inside an input is never thrown: it
/// is counted in the input's `InputSummary`.
public struct ConntrackReaderError: LocatedError {
  public enum Code: Sendable { case cannotOpen, cannotRead, notConntrack }
  public var code: Code
  public var path: String?
  public var line: Int?
  public var reason: String
  public var hint: String
  public var errno: Errno?

  public var category: FailureCategory {
    switch code {
    case .cannotOpen, .cannotRead: .unreadableInput
    case .notConntrack: .unrecognizedInput
    }
  }
}

/// Limits that keep a hostile or enormous input from exhausting memory.
public struct ConntrackReadLimits: Sendable {
  /// Longest line accepted; longer lines are counted as malformed.
  public var maxLineLength = LineReader.defaultMaxLineLength
  /// Connections of an event stream kept open at once (between `[NEW]` and `[DESTROY]`).
  /// Past it, the oldest open connection is closed early and counted in the input's notes.
  public var maxOpenEventConnections = 1_000_000

  public init() {}
}

/// Reads conntrack text (`conntrack -L`, `-o extended`, `-o xml`, `/proc/net/nf_conntrack`,
/// `conntrack -E`) from a path or standard input, one line at a time, and hands each connection
/// to `observe` as a `ConnectionObservation`.
///
/// Table dumps give one observation per entry as it is read. Event streams are assembled: the
/// events of one connection (same original tuple and zone, from `[NEW]` to `[DESTROY]`) become
/// one observation, handed over when the connection is destroyed or, for connections still
/// open, at the end of the input.
public struct ConntrackReader {
  public var limits: ConntrackReadLimits

  public init(limits: ConntrackReadLimits = ConntrackReadLimits()) {
    self.limits = limits
  }

  /// Reads `path` (`-` for standard input). `input` is the index recorded in each observation's
  /// location.
  public func read(
    path: String, input: Int, observe: (ConnectionObservation) -> Void
  ) throws(ConntrackReaderError) -> InputSummary {
    if path == "-" {
      return try read(descriptor: .standardInput, path: path, input: input, observe: observe)
    }
    let descriptor: FileDescriptor
    do {
      descriptor = try FileDescriptor.open(FilePath(path), .readOnly)
    } catch {
      throw ConntrackReaderError(
        code: .cannotOpen, path: path, line: nil,
        reason: "cannot open: \(error)", hint: "check the path and permissions",
        errno: error as? Errno)
    }
    defer { try? descriptor.close() }
    return try read(descriptor: descriptor, path: path, input: input, observe: observe)
  }

  /// Reads an open descriptor; does not close it.
  public func read(
    descriptor: FileDescriptor, path: String, input: Int,
    observe: (ConnectionObservation) -> Void
  ) throws(ConntrackReaderError) -> InputSummary {
    var summary = InputSummary(path: path, kind: .conntrack)
    var events = EventAssembler(limit: limits.maxOpenEventConnections)
    var xml = ConntrackXMLAssembler()
    var format: Format = .unknown
    var sawEvents = false
    var binaryLines = 0
    var usefulLines = 0
    var spliced: [UInt8] = []
    var splicedLine = 0

    func handle(_ outcome: ConntrackLine) {
      switch outcome {
      case .blank:
        return
      case .summary(let declared):
        if let declared { summary.notes.append("conntrack reported \(declared) flow entries") }
        return
      case .issue(let issue):
        summary.records += 1
        summary.record(issue)
      case .entry(let entry):
        summary.records += 1
        usefulLines += 1
        take(entry)
      case .recovered(let entry, let issue):
        summary.records += 1
        usefulLines += 1
        summary.record(issue)
        take(entry)
      }
    }

    func take(_ entry: ConntrackEntry) {
      if let event = entry.event {
        sawEvents = true
        events.add(entry, event: event, input: input, emit: observe)
      } else if let observation = entry.observation(input: input) {
        observe(observation)
      }
    }

    let reader = LineReader(descriptor: descriptor, maxLineLength: limits.maxLineLength)
    do {
      try reader.forEachLine { line, number, overlong in
        if format == .unknown {
          guard let first = line.firstIndex(where: { !Bytes.isSpace($0) }) else { return }
          format = line[first] == 0x3C ? .xml : .text  // "<"
        }
        if overlong {
          summary.records += 1
          summary.record(
            InputIssue(
              kind: .malformed, line: number,
              message: "line longer than \(limits.maxLineLength) bytes"))
          return
        }
        func binary() -> Bool {
          guard let base = line.baseAddress, memchr(base, 0, line.count) != nil else { return false }
          binaryLines += 1
          summary.records += 1
          summary.record(InputIssue(kind: .malformed, line: number, message: "binary data (NUL bytes)"))
          return true
        }
        if format == .xml {
          if !binary() { xml.feed(line, number: number, emit: handle) }
          return
        }
        if splicedLine != 0 {
          spliced.append(contentsOf: line)
          spliced.withUnsafeBytes { handle(ConntrackLineParser.parse($0, number: splicedLine)) }
          summary.notes.append("line \(splicedLine): an entry split by conntrack's summary line was joined")
          splicedLine = 0
          return
        }
        let outcome = ConntrackLineParser.parse(line, number: number)
        // Only a line that is not a clean entry is worth these extra scans.
        var suspicious = false
        switch outcome {
        case .issue: suspicious = true
        case .entry(let e), .recovered(let e, _): suspicious = e.strayWords
        default: break
        }
        if suspicious {
          if binary() { return }
          // `conntrack -L > f 2>&1` can put the unbuffered summary line inside a buffered
          // entry: "tcp … spoconntrack v1.4.7 (conntrack-tools): 9 flow entries have been
          // shown.\nrt=…". Take the summary out and join the entry's two halves.
          if let split = SummarySplit(line) {
            handle(ConntrackLineParser.parse(split.summary, number: number))
            spliced.removeAll(keepingCapacity: true)
            spliced.append(contentsOf: split.before)
            splicedLine = number
            return
          }
        }
        handle(outcome)
      }
    } catch {
      throw ConntrackReaderError(
        code: .cannotRead, path: path, line: nil, reason: "read failed: \(error)",
        hint: "check that the path is a readable file, FIFO or pipe", errno: error as? Errno)
    }
    if format == .xml { xml.finish(emit: handle) }
    if splicedLine != 0 {
      spliced.withUnsafeBytes { handle(ConntrackLineParser.parse($0, number: splicedLine)) }
    }
    if sawEvents {
      summary.kind = .conntrackEvents
      events.finish(emit: observe)
      if events.evicted > 0 {
        summary.notes.append(
          "\(events.evicted) open connections closed early: more than \(limits.maxOpenEventConnections) open at once"
        )
        summary.partial = true
      }
      if events.startedBefore > 0 {
        summary.notes.append("\(events.startedBefore) connections began before the events were recorded")
      }
    }
    if summary.truncated > 0 { summary.partial = true }

    // Nothing at all was a conntrack entry: this is some other kind of file.
    if usefulLines == 0 && summary.issueCount > 0 {
      let what = binaryLines > 0 ? "binary data" : "no conntrack entries"
      throw ConntrackReaderError(
        code: .notConntrack, path: path, line: summary.examples.first?.line,
        reason: "\(what) in \(summary.records) lines",
        hint:
          "lbscope conntrack reads `conntrack -L` (plain, -o extended, -o xml), `conntrack -E` and /proc/net/nf_conntrack",
        errno: nil)
    }
    return summary
  }

  enum Format { case unknown, text, xml }
}

/// A line holding conntrack's summary after the start of an entry.
struct SummarySplit {
  var before: UnsafeRawBufferPointer
  var summary: UnsafeRawBufferPointer

  init?(_ line: UnsafeRawBufferPointer) {
    guard line.count > 20, let base = line.baseAddress,
      Bytes.contains(line, "entries have been"),
      let start = memmemPointer(base, line.count, ("conntrack v" as StaticString).utf8Start, 11)
    else { return nil }
    let offset = base.distance(to: start)
    guard offset > 0 else { return nil }
    before = UnsafeRawBufferPointer(rebasing: line[..<offset])
    summary = UnsafeRawBufferPointer(rebasing: line[offset...])
  }
}

/// Turns `conntrack -E` events into one observation per connection.
struct EventAssembler {
  struct Key: Hashable {
    var original: FiveTuple
    var zone: UInt16?
  }
  struct Open {
    var observation: ConnectionObservation
    var everReplied: Bool
    var everAssured: Bool
    var order: Int
  }

  let limit: Int
  var open: [Key: Open] = [:]
  var order = 0
  var evicted = 0
  var startedBefore = 0

  init(limit: Int) { self.limit = max(limit, 1) }

  mutating func add(
    _ entry: ConntrackEntry, event: ConntrackEvent, input: Int,
    emit: (ConnectionObservation) -> Void
  ) {
    guard let observation = entry.observation(input: input) else { return }
    let key = Key(original: observation.original, zone: entry.zone)
    if event == .new, let previous = open.removeValue(forKey: key) {
      emit(finished(previous))
    }
    if var current = open[key] {
      current.observation.state = observation.state ?? current.observation.state
      current.observation.translated = observation.translated
      current.everReplied = current.everReplied || !entry.unreplied
      current.everAssured = current.everAssured || entry.assured
      if observation.originalCounters.packets != nil {
        current.observation.originalCounters = observation.originalCounters
        current.observation.replyCounters = observation.replyCounters
      }
      if event == .destroy {
        open[key] = nil
        emit(finished(current))
      } else {
        open[key] = current
      }
      return
    }
    if event != .new { startedBefore += 1 }
    let record = Open(
      observation: observation, everReplied: !entry.unreplied, everAssured: entry.assured,
      order: order)
    order += 1
    if event == .destroy {
      emit(finished(record))
      return
    }
    if open.count >= limit {
      // Close the oldest quarter at once, so a flood costs O(log n) per event, not O(n).
      let oldest = open.sorted { $0.value.order < $1.value.order }.prefix(max(limit / 4, 1))
      for (key, value) in oldest {
        open[key] = nil
        evicted += 1
        emit(finished(value))
      }
    }
    open[key] = record
  }

  func finished(_ record: Open) -> ConnectionObservation {
    var observation = record.observation
    observation.replied = record.everReplied
    observation.assured = record.everAssured
    return observation
  }

  /// Emits connections still open, in the order they began.
  mutating func finish(emit: (ConnectionObservation) -> Void) {
    for record in open.values.sorted(by: { $0.order < $1.order }) {
      emit(finished(record))
    }
    open.removeAll()
  }
}
