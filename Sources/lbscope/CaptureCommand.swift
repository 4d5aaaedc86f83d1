import ArgumentParser
import LBAnalysis
import LBCapture
import LBCore
import LBLive
import LBPcap
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

struct CaptureCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "capture",
    abstract: "Capture live traffic into rotating pcapng files, then analyse what was captured.",
    discussion: """
      Captures through libpcap (needs CAP_NET_RAW; exit 77 without it) on `any` or the named
      interfaces, writing DIR/capture-00001.pcapng, … Each file is complete on its own (written
      under a temporary name and renamed when closed) and holds at most --rotate-size MB and
      --rotate-seconds of traffic. Ends on Ctrl-C, SIGTERM, --duration or --packets; the
      kernel's buffer is drained and every file closed, so nothing captured is lost. Then the
      files are read back and the report printed; drops counted by the kernel (pcap_stats) are
      in the report's input summary and make it capture-incomplete (exit 65).

        sudo lbscope capture --interface any --filter 'tcp port 80 or tcp port 8080' \\
          --duration 60 --write /tmp/cap
        lbscope pcap /tmp/cap/*.pcapng --service 10.96.0.10:80
      """
  )

  @Option(
    name: [.short, .customLong("interface")], parsing: .upToNextOption,
    help: ArgumentHelp("`any`, or one or more interface names.", valueName: "any|NAME"))
  var interfaces: [String] = ["any"]

  @Option(help: ArgumentHelp("Only capture packets matching this pcap-filter expression.", valueName: "BPF"))
  var filter: String?

  @Option(help: ArgumentHelp("Stop after this many seconds (default: until Ctrl-C).", valueName: "S"))
  var duration: Double?

  @Option(help: ArgumentHelp("Stop after this many packets.", valueName: "N"))
  var packets: Int?

  @Option(
    help: ArgumentHelp("Bytes kept of each packet: headers plus plaintext HTTP headers.", valueName: "N"))
  var snaplen = 512

  @Flag(help: "Keep whole packets (snap length 262144).")
  var full = false

  @Option(help: ArgumentHelp("Directory for the pcapng files (created if missing).", valueName: "DIR"))
  var write: String

  @Option(help: ArgumentHelp("Start a new file before one grows past this many megabytes.", valueName: "MB"))
  var rotateSize: Double = 100

  @Option(help: ArgumentHelp("Start a new file after this many seconds.", valueName: "S"))
  var rotateSeconds: Double = 300

  @Option(help: ArgumentHelp("Kernel capture buffer per interface, in MiB.", valueName: "MIB"))
  var bufferSize = 32

  @OptionGroup var report: ReportOptions

  static let fullSnaplen = 262_144

  var effectiveSnaplen: Int { full ? Self.fullSnaplen : snaplen }

  func validate() throws {
    if interfaces.isEmpty { throw ValidationError("give --interface any or interface names") }
    if interfaces.count > 1 && interfaces.contains("any") {
      throw ValidationError("--interface any already captures every interface; give it alone")
    }
    if let duration, !(duration > 0 && duration <= 30 * 86400) {
      throw ValidationError("--duration must be a positive number of seconds")
    }
    if let packets, packets <= 0 { throw ValidationError("--packets must be positive") }
    guard (64...Self.fullSnaplen).contains(snaplen) else {
      throw ValidationError("--snaplen must be 64…\(Self.fullSnaplen)")
    }
    guard rotateSeconds >= 1 else { throw ValidationError("--rotate-seconds must be at least 1") }
    guard rotateSize * 1_000_000 >= Double(effectiveSnaplen + 70_000) else {
      throw ValidationError(
        "--rotate-size must hold at least one packet of the snap length plus headers (≥ \((effectiveSnaplen + 70_000) / 1000) kB)"
      )
    }
    guard (1...2048).contains(bufferSize) else { throw ValidationError("--buffer-size must be 1…2048 MiB") }
  }

  func run() throws {
    var options = CaptureOptions()
    options.interfaces = interfaces
    options.filter = filter
    options.snaplen = effectiveSnaplen
    options.bufferBytes = bufferSize << 20
    let capture: LiveCapture
    do {
      capture = try LiveCapture(options)
    } catch {
      Failure(error).exit()
    }
    guard let stop = SignalPipe.install() else {
      FileDescriptor.standardError.writeLine("lbscope: cannot install signal handlers")
      throw ExitCode(Failure.cannotWrite)
    }
    let writer: PcapngWriter
    do {
      writer = try PcapngWriter(
        directory: write, interfaces: capture.interfaces,
        rotation: RotationPolicy(maxBytes: Int(rotateSize * 1_000_000), maxSeconds: rotateSeconds))
    } catch {
      Failure(error).exit()
    }
    writer.statistics = { [unowned capture] in capture.counters() }

    let clock = ContinuousClock()
    let started = clock.now
    let deadline = duration.map { started.advanced(by: .milliseconds(Int64($0 * 1000))) }
    let terminal = isatty(STDERR_FILENO) == 1
    FileDescriptor.standardError.writeLine(
      "lbscope: capturing on \(interfaces.joined(separator: ", ")) into \(write)"
        + (duration.map { " for \($0) s" } ?? "") + "; Ctrl-C to stop")
    let end: CaptureEnd
    do {
      end = try capture.run(
        writer: writer, stop: stop, deadline: deadline, maxPackets: packets,
        onTick: {
          guard terminal else { return }
          let dropped = capture.counters().reduce(0) { $0 + $1.dropped }
          let seconds = WatchCommand.seconds(started.duration(to: clock.now))
          _ = try? FileDescriptor.standardError.writeAll(
            "\r\(seconds) s, \(writer.packets) packets, \(writer.files.count + 1) file(s), \(dropped) dropped   "
              .utf8)
        })
      try writer.close()
    } catch {
      try? writer.close()
      if terminal { _ = try? FileDescriptor.standardError.writeAll("\r\u{1B}[K".utf8) }
      Failure(error).exit()
    }
    if terminal { _ = try? FileDescriptor.standardError.writeAll("\r\u{1B}[K".utf8) }
    // Every file is closed: from here on a signal interrupts the read-back (exit 130).
    Interrupt.watch(stop, output: report.output)
    let counters = capture.counters()
    let seconds = WatchCommand.seconds(started.duration(to: clock.now))
    let why: String
    switch end {
    case .deadline: why = "after --duration"
    case .packetLimit: why = "after --packets"
    case .signal: why = "by \(SignalPipe.caught.map(WatchCommand.signalName) ?? "a signal")"
    }
    FileDescriptor.standardError.writeLine(
      "lbscope: captured \(writer.packets) packets in \(seconds) s (ended \(why)) into \(writer.files.count) file(s)"
    )

    var analyzer = ConnectionAnalyzer(options: report.analysisOptions)
    let trace: TraceReader
    do {
      trace = try TraceReader(paths: writer.files)
      try trace.run { analyzer.add($0) }
    } catch {
      Failure(error).exit()
    }
    let summaries = Self.summaries(
      trace.summaries, interfaces: capture.interfaces, counters: counters, seconds: seconds, why: why)
    try Output.write(analyzer.finish(inputs: summaries), options: report)
  }

  /// The read-back files as `live-capture` inputs; the first carries what `pcap_stats` said,
  /// and any drop marks it partial with a counted issue (so the report says capture-incomplete).
  static func summaries(
    _ files: [InputSummary], interfaces: [CaptureInterface], counters: [CaptureCounters], seconds: Double,
    why: String
  ) -> [InputSummary] {
    var result = files.map { file -> InputSummary in
      var summary = file
      summary.kind = .liveCapture
      return summary
    }
    guard !result.isEmpty else { return result }
    result[0].notes.append("captured \(seconds) s, ended \(why), \(files.count) file(s)")
    for (interface, c) in zip(interfaces, counters) {
      result[0].notes.append(
        "pcap_stats \(interface.name): \(c.received) received, \(c.droppedByKernel) dropped by the kernel (buffer full), \(c.droppedByInterface) dropped by the interface"
      )
      if c.dropped > 0 {
        result[0].partial = true
        result[0].record(
          InputIssue(
            kind: .truncated, line: 0,
            message:
              "\(c.dropped) packets dropped on \(interface.name) (\(c.droppedByKernel) kernel, \(c.droppedByInterface) interface): counts are lower bounds; raise --buffer-size or narrow --filter"
          ))
      }
    }
    return result
  }
}
