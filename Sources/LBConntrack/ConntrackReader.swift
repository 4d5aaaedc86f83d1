import Dispatch
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
  /// The smallest part of a file worth a thread of its own in a parallel read.
  public var minimumPartBytes: Int64 = 8 << 20

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
    let descriptor = try Self.open(path)
    defer { if path != "-" { try? descriptor.close() } }
    return try read(descriptor: descriptor, path: path, input: input, observe: observe)
  }

  /// `path` opened for reading; standard input for `-` (the caller closes any other).
  static func open(_ path: String) throws(ConntrackReaderError) -> FileDescriptor {
    if path == "-" { return .standardInput }
    do {
      return try FileDescriptor.open(FilePath(path), .readOnly)
    } catch {
      throw ConntrackReaderError(
        code: .cannotOpen, path: path, line: nil,
        reason: "cannot open: \(error)", hint: "check the path and permissions",
        errno: error as? Errno)
    }
  }

  /// Reads an open descriptor; does not close it.
  public func read(
    descriptor: FileDescriptor, path: String, input: Int,
    observe: (ConnectionObservation) -> Void
  ) throws(ConntrackReaderError) -> InputSummary {
    try read(
      descriptor: descriptor, path: path, input: input, observe: observe,
      fast: { observe($0.observation(input: input)) })
  }

  /// Reads an open descriptor, handing entries of the common shape to `fast`.
  func read(
    descriptor: FileDescriptor, path: String, input: Int,
    observe: (ConnectionObservation) -> Void, fast: (IPv4Observation) -> Void
  ) throws(ConntrackReaderError) -> InputSummary {
    var pass = TextPass(path: path, input: input, limits: limits, part: false)
    let reader = LineReader(descriptor: descriptor, maxLineLength: limits.maxLineLength)
    do {
      try reader.forEachLine { line, number, overlong in
        try pass.line(line, number: number, overlong: overlong, observe: observe, fast: fast)
      }
    } catch {
      throw ConntrackReaderError(
        code: .cannotRead, path: path, line: nil, reason: "read failed: \(error)",
        hint: "check that the path is a readable file, FIFO or pipe", errno: error as? Errno)
    }
    pass.finish(observe: observe)
    return try pass.result()
  }

  /// The threads a large regular file is split over: the machine's online processors, at most 8.
  public static var defaultParallelism: Int {
    #if canImport(Glibc)
      return max(1, min(8, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    #else
      return 1
    #endif
  }

  /// Reads `path` into `sink`. A large regular file holding a table dump (not events, not XML) is
  /// split at line boundaries into `parallelism` parts read at once, each into an empty copy of
  /// `sink`, merged in file order; line numbers in the summary are those of the whole file.
  /// Standard input, pipes, small files, event logs and XML are read in one pass.
  public func read<Sink: ObservationSink>(
    path: String, input: Int, into sink: inout Sink,
    parallelism: Int = ConntrackReader.defaultParallelism
  ) throws(ConntrackReaderError) -> InputSummary {
    if path != "-", parallelism > 1,
      let summary = try readInParts(path: path, input: input, into: &sink, parallelism: parallelism)
    {
      return summary
    }
    let descriptor = try Self.open(path)
    defer { if path != "-" { try? descriptor.close() } }
    var batches = Batches(input: input)
    defer {
      batches.flush(to: &sink)
      batches.deallocate()
    }
    return try read(
      descriptor: descriptor, path: path, input: input,
      observe: { batches.add($0, to: &sink) }, fast: { batches.add($0, to: &sink) })
  }

  /// The two batches a reader fills (observations, and `IPv4Observation`s from the fast path),
  /// handed to the sink in the order the connections were read: adding to one first hands
  /// over what the other holds.
  struct Batches {
    var observations = ObservationBatch()
    var fast: IPv4ObservationBatch

    init(input: Int) { fast = IPv4ObservationBatch(input: input) }

    mutating func add<Sink: ObservationSink>(_ observation: ConnectionObservation, to sink: inout Sink) {
      fast.flush(to: &sink)
      observations.add(observation, to: &sink)
    }

    mutating func add<Sink: ObservationSink>(_ connection: IPv4Observation, to sink: inout Sink) {
      observations.flush(to: &sink)
      fast.add(connection, to: &sink)
    }

    mutating func flush<Sink: ObservationSink>(to sink: inout Sink) {
      observations.flush(to: &sink)
      fast.flush(to: &sink)
    }

    func deallocate() { fast.deallocate() }
  }

  /// The parallel read, or `nil` when the input is not suited to it (nothing has been added to
  /// `sink` then).
  func readInParts<Sink: ObservationSink>(
    path: String, input: Int, into sink: inout Sink, parallelism: Int
  ) throws(ConntrackReaderError) -> InputSummary? {
    // Only a regular file: opening a FIFO here and then again in the one-pass read would lose
    // what its writer put in meanwhile and wait for a second writer for ever.
    var status = stat()
    guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return nil }
    guard let descriptor = try? FileDescriptor.open(FilePath(path), .readOnly) else { return nil }
    defer { try? descriptor.close() }
    guard let bounds = partBounds(descriptor, parallelism: parallelism) else { return nil }

    let parts = bounds.count - 1
    let limits = self.limits
    let empty = sink.makeEmpty()
    let results = UnsafeMutableBufferPointer<PartResult<Sink>?>.allocate(capacity: parts)
    results.initialize(repeating: nil)
    defer {
      results.deinitialize()
      results.deallocate()
    }
    nonisolated(unsafe) let slots = results
    DispatchQueue.concurrentPerform(iterations: parts) { part in
      var partSink = empty
      var pass = TextPass(path: path, input: input, limits: limits, part: true)
      let reader = LineReader(
        descriptor: descriptor, maxLineLength: limits.maxLineLength,
        range: bounds[part]..<bounds[part + 1])
      var lines = 0
      var failure: Error? = nil
      var batches = Batches(input: input)
      defer { batches.deallocate() }
      do {
        try reader.forEachLine { line, number, overlong in
          lines = number
          try pass.line(
            line, number: number, overlong: overlong,
            observe: { batches.add($0, to: &partSink) }, fast: { batches.add($0, to: &partSink) })
        }
        batches.flush(to: &partSink)
        partSink.finishPart()
      } catch is TextPass.NeedsOnePass {
        pass.needsOnePass = true
      } catch {
        failure = error
      }
      slots[part] = PartResult(sink: partSink, pass: pass, lines: lines, failure: failure)
    }

    var merged = TextPass(path: path, input: input, limits: limits, part: false)
    var base = 0
    var partSinks: [(sink: Sink, lineOffset: Int)] = []
    for part in 0..<parts {
      guard let result = results[part] else { return nil }
      if result.pass.needsOnePass { return nil }
      if let failure = result.failure {
        throw ConntrackReaderError(
          code: .cannotRead, path: path, line: nil, reason: "read failed: \(failure)",
          hint: "check that the path is a readable file", errno: failure as? Errno)
      }
      merged.absorb(result.pass, lineOffset: base)
      partSinks.append((result.sink, base))
      base += result.lines
    }
    for part in partSinks { sink.merge(part.sink, lineOffset: part.lineOffset) }
    return try merged.result()
  }

  struct PartResult<Sink> {
    var sink: Sink
    var pass: TextPass
    var lines: Int
    var failure: Error?
  }

  /// Byte offsets that split a regular file into parts at line starts: `[0, b1, …, size]`;
  /// `nil` when the file is small, not regular, or looks like events or XML.
  func partBounds(_ descriptor: FileDescriptor, parallelism: Int) -> [Int64]? {
    var info = stat()
    guard fstat(descriptor.rawValue, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
    let size = Int64(info.st_size)
    let parts = Int(min(Int64(parallelism), size / max(limits.minimumPartBytes, 1)))
    guard parts > 1 else { return nil }

    let window = 1 << 16
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * window, alignment: 16)
    defer { buffer.deallocate() }
    func load(_ offset: Int64, _ count: Int) -> UnsafeRawBufferPointer? {
      guard
        let n = try? descriptor.read(
          fromAbsoluteOffset: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]))
      else { return nil }
      return UnsafeRawBufferPointer(rebasing: buffer[..<n])
    }

    // Events and XML are assembled across lines: one pass.
    guard let head = load(0, window) else { return nil }
    if let first = head.firstIndex(where: { !Bytes.isSpace($0) }), head[first] == 0x3C { return nil }  // "<"
    if Bytes.contains(head, "[NEW]") || Bytes.contains(head, "[UPDATE]") || Bytes.contains(head, "[DESTROY]")
    {
      return nil
    }

    var bounds: [Int64] = [0]
    for k in 1..<parts {
      let target = size * Int64(k) / Int64(parts)
      // The line ending just before the cut must be whole in the window, to see whether
      // conntrack's summary line split an entry there (its halves must stay in one part).
      let start = max(target - Int64(window), bounds[bounds.count - 1])
      guard let bytes = load(start, 2 * window) else { return nil }
      let from = Int(target - start)
      guard from < bytes.count, let newline = bytes[from...].firstIndex(of: 0x0A) else { return nil }
      var cut = newline + 1
      let lineStart = (bytes[..<newline].lastIndex(of: 0x0A)).map { $0 + 1 } ?? 0
      if SummarySplit(UnsafeRawBufferPointer(rebasing: bytes[lineStart..<newline])) != nil {
        guard let next = bytes[cut...].firstIndex(of: 0x0A) else { return nil }
        cut = next + 1
      }
      let offset = start + Int64(cut)
      guard offset > bounds[bounds.count - 1], offset < size else { return nil }
      bounds.append(offset)
    }
    bounds.append(size)
    return bounds
  }

  enum Format { case unknown, text, xml }
}

/// The state of reading one stream of conntrack text, line by line: format detection, damage
/// counting, the summary-line splice, event assembly and XML flows.
struct TextPass {
  /// Thrown by a part of a parallel read that meets events or XML, which need one pass.
  struct NeedsOnePass: Error {}

  let path: String
  let input: Int
  let limits: ConntrackReadLimits
  /// A part of a parallel read: events and XML are not handled, they abort the part.
  let part: Bool
  var summary: InputSummary
  var events: EventAssembler
  var xml = ConntrackXMLAssembler()
  var format: ConntrackReader.Format = .unknown
  var sawEvents = false
  var needsOnePass = false
  var binaryLines = 0
  var usefulLines = 0
  var spliced: [UInt8] = []
  var splicedLine = 0
  /// Lines where an entry split by the summary line was joined.
  var splicedLines: [Int] = []
  /// The fast path's frontend and backend addresses (this pass's thread only).
  let memo = AddressMemo()

  init(path: String, input: Int, limits: ConntrackReadLimits, part: Bool) {
    self.path = path
    self.input = input
    self.limits = limits
    self.part = part
    summary = InputSummary(path: path, kind: .conntrack)
    events = EventAssembler(limit: limits.maxOpenEventConnections)
  }

  mutating func handle(_ outcome: ConntrackLine, observe: (ConnectionObservation) -> Void) throws {
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
      try take(entry, observe: observe)
    case .recovered(let entry, let issue):
      summary.records += 1
      usefulLines += 1
      summary.record(issue)
      try take(entry, observe: observe)
    }
  }

  mutating func take(_ entry: ConntrackEntry, observe: (ConnectionObservation) -> Void) throws {
    if let event = entry.event {
      if part { throw NeedsOnePass() }
      sawEvents = true
      events.add(entry, event: event, input: input, emit: observe)
    } else if let observation = entry.observation(input: input) {
      observe(observation)
    }
  }

  mutating func line(
    _ line: UnsafeRawBufferPointer, number: Int, overlong: Bool,
    observe: (ConnectionObservation) -> Void
  ) throws {
    let input = self.input
    try self.line(line, number: number, overlong: overlong, observe: observe) {
      observe($0.observation(input: input))
    }
  }

  /// Reads one line: entries of the common shape (`CommonLineParser`) go to `fast`, every
  /// other connection to `observe`.
  @inline(__always)
  mutating func line(
    _ line: UnsafeRawBufferPointer, number: Int, overlong: Bool,
    observe: (ConnectionObservation) -> Void, fast: (IPv4Observation) -> Void
  ) throws {
    if format == .unknown {
      guard let first = line.firstIndex(where: { !Bytes.isSpace($0) }) else { return }
      format = line[first] == 0x3C ? .xml : .text  // "<"
      if format == .xml && part { throw NeedsOnePass() }
    }
    if overlong {
      summary.records += 1
      summary.record(
        InputIssue(
          kind: .malformed, line: number, message: "line longer than \(limits.maxLineLength) bytes"))
      return
    }
    if format == .xml {
      if !binary(line, number: number) {
        var outcomes: [ConntrackLine] = []
        xml.feed(line, number: number) { outcomes.append($0) }
        for outcome in outcomes { try handle(outcome, observe: observe) }
      }
      return
    }
    if splicedLine != 0 {
      spliced.append(contentsOf: line)
      let joinedAt = splicedLine
      splicedLine = 0
      let outcome = spliced.withUnsafeBytes { ConntrackLineParser.parse($0, number: joinedAt) }
      try handle(outcome, observe: observe)
      splicedLines.append(joinedAt)
      return
    }
    // Most lines take the fast path; it decodes exactly what the general parser would.
    if let connection = CommonLineParser.parse(line, number: number, memo: memo) {
      summary.records += 1
      usefulLines += 1
      fast(connection)
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
      if binary(line, number: number) { return }
      // `conntrack -L > f 2>&1` can put the unbuffered summary line inside a buffered
      // entry: "tcp … spoconntrack v1.4.7 (conntrack-tools): 9 flow entries have been
      // shown.\nrt=…". Take the summary out and join the entry's two halves.
      if let split = SummarySplit(line) {
        try handle(ConntrackLineParser.parse(split.summary, number: number), observe: observe)
        spliced.removeAll(keepingCapacity: true)
        spliced.append(contentsOf: split.before)
        splicedLine = number
        return
      }
    }
    try handle(outcome, observe: observe)
  }

  mutating func binary(_ line: UnsafeRawBufferPointer, number: Int) -> Bool {
    guard let base = line.baseAddress, memchr(base, 0, line.count) != nil else { return false }
    binaryLines += 1
    summary.records += 1
    summary.record(InputIssue(kind: .malformed, line: number, message: "binary data (NUL bytes)"))
    return true
  }

  /// Ends the input: open XML flows, a dangling half entry, events still open.
  mutating func finish(observe: (ConnectionObservation) -> Void) {
    if format == .xml {
      var outcomes: [ConntrackLine] = []
      xml.finish { outcomes.append($0) }
      for outcome in outcomes { try? handle(outcome, observe: observe) }
    }
    if splicedLine != 0 {
      let outcome = spliced.withUnsafeBytes { ConntrackLineParser.parse($0, number: splicedLine) }
      try? handle(outcome, observe: observe)
      splicedLine = 0
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
  }

  /// Adds a later part of the same file, whose line numbers start after `lineOffset` lines.
  mutating func absorb(_ other: TextPass, lineOffset: Int) {
    summary.records += other.summary.records
    summary.truncated += other.summary.truncated
    summary.malformed += other.summary.malformed
    summary.unsupported += other.summary.unsupported
    for var example in other.summary.examples where summary.examples.count < InputSummary.exampleLimit {
      example.line += lineOffset
      summary.examples.append(example)
    }
    summary.notes += other.summary.notes
    summary.partial = summary.partial || other.summary.partial
    binaryLines += other.binaryLines
    usefulLines += other.usefulLines
    splicedLines += other.splicedLines.map { $0 + lineOffset }
    if format == .unknown { format = other.format }
  }

  /// The summary, or the error for an input with no conntrack entries at all.
  func result() throws(ConntrackReaderError) -> InputSummary {
    var summary = self.summary
    for line in splicedLines {
      summary.notes.append("line \(line): an entry split by conntrack's summary line was joined")
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
