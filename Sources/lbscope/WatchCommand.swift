import ArgumentParser
import LBAnalysis
import LBConntrack
import LBCore
import LBLive
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

struct WatchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "watch",
    abstract: "Watch new connections land on backends, live, from conntrack events.",
    discussion: """
      Subscribes to the kernel's conntrack events (new and destroy) over netlink; needs
      CAP_NET_ADMIN (exit 77 without it). On a terminal, a per-backend table is redrawn twice a
      second (shares, bars, clients pinned to one backend; NO_COLOR turns colour off). When
      standard output is not a terminal, one JSON object per new connection is written per line.
      Ends on Ctrl-C, SIGTERM or after --duration, then prints the report (to --output if given,
      else after the stream); ending this way is normal and exits 0. Lost events (the kernel's
      buffer overran) are reported as capture-incomplete.

        sudo lbscope watch --service 10.96.0.10:80 --duration 60
      """
  )

  @Option(help: ArgumentHelp("Stop after this many seconds (default: until Ctrl-C).", valueName: "S"))
  var duration: Double?

  @OptionGroup var report: ReportOptions

  func validate() throws {
    if let duration, !(duration > 0 && duration <= 30 * 86400) {
      throw ValidationError("--duration must be a positive number of seconds")
    }
  }

  func run() throws {
    let filter = report.service.flatMap(Endpoint.init)
    let stream: ConntrackEventStream
    do {
      stream = try ConntrackEventStream()
    } catch {
      Failure(error).exit()
    }
    guard let stop = SignalPipe.install() else {
      FileDescriptor.standardError.writeLine("lbscope: cannot install signal handlers")
      throw ExitCode(Failure.cannotWrite)
    }
    let terminal = isatty(1) == 1
    var display = WatchDisplay(color: terminal && getenv("NO_COLOR") == nil)
    var table = LiveServiceTable(filter: filter)
    var analyzer = ConnectionAnalyzer(options: report.analysisOptions)
    let clock = ContinuousClock()
    let started = clock.now
    let deadline = duration.map { started.advanced(by: .milliseconds(Int64($0 * 1000))) }
    FileDescriptor.standardError.writeLine(
      "lbscope: watching conntrack events" + (filter.map { " for \($0)" } ?? "")
        + (duration.map { " for \($0) s" } ?? "") + "; Ctrl-C to stop")

    let end: ConntrackEventStream.End
    do {
      end = try stream.run(
        stop: stop, deadline: deadline,
        onEvent: { entry in
          let seconds = Self.seconds(started.duration(to: clock.now))
          if let new = table.take(entry, finished: { analyzer.add($0) }), !terminal {
            display.line(new, entry: entry, seconds: seconds)
          }
        },
        onTick: {
          if terminal {
            display.draw(table, seconds: Self.seconds(started.duration(to: clock.now)), lost: stream.overruns)
          }
        })
    } catch {
      Failure(error).exit()
    }
    // From here on a signal interrupts (exit 130) instead of ending the watch.
    Interrupt.watch(stop, output: report.output)
    table.finishOpen { analyzer.add($0) }

    var summary = InputSummary(path: "netlink:conntrack-events", kind: .liveConntrack)
    summary.records = table.events
    let seconds = Self.seconds(started.duration(to: clock.now))
    let why =
      end == .deadline ? "after --duration" : "by \(SignalPipe.caught.map(Self.signalName) ?? "a signal")"
    summary.notes.append("watched \(seconds) s, ended \(why)")
    if table.startedBefore > 0 {
      summary.notes.append(
        "\(table.startedBefore) connections ended that began before the watch (not counted)")
    }
    if table.droppedOpen > 0 {
      summary.partial = true
      summary.notes.append(
        "\(table.droppedOpen) new connections not counted: more than \(table.maxOpen) open at once")
    }
    if stream.overruns > 0 {
      summary.partial = true
      for _ in 0..<stream.overruns {
        summary.record(
          InputIssue(
            kind: .truncated, line: 0,
            message: "the kernel's event buffer overran (ENOBUFS): events were lost, counts are lower bounds")
        )
      }
    }
    if terminal { display.finish() }
    try Output.write(analyzer.finish(inputs: [summary]), options: report)
  }

  static func seconds(_ duration: Duration) -> Double {
    let c = duration.components
    return ((Double(c.seconds) + Double(c.attoseconds) / 1e18) * 10).rounded() / 10
  }

  static func signalName(_ number: Int32) -> String {
    number == SIGINT ? "SIGINT" : number == SIGTERM ? "SIGTERM" : "signal \(number)"
  }
}

/// The terminal table and the JSON-lines stream of `lbscope watch`.
struct WatchDisplay {
  let color: Bool
  var linesDrawn = 0

  init(color: Bool) { self.color = color }

  /// One JSON object per new connection, on one line, flushed at once.
  func line(_ observation: ConnectionObservation, entry: ConntrackEntry, seconds: Double) {
    var fields = [
      "\"event\":\"new\"", "\"seconds\":\(seconds)", "\"protocol\":\"\(observation.original.proto)\"",
      "\"client\":\"\(observation.client)\"", "\"frontend\":\"\(observation.frontend)\"",
      "\"backend\":\"\(observation.backend)\"",
    ]
    if observation.isSourceTranslated {
      fields.append("\"translatedSource\":\"\(observation.translated.source)\"")
    }
    if let zone = entry.zone { fields.append("\"zone\":\(zone)") }
    if let mark = entry.mark { fields.append("\"mark\":\(mark)") }
    _ = try? FileDescriptor.standardOutput.writeAll(("{" + fields.joined(separator: ",") + "}\n").utf8)
  }

  func paint(_ text: String, _ code: String) -> String {
    color ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
  }

  /// Redraws the table in place: up over the previous drawing, clear, draw.
  mutating func draw(_ table: LiveServiceTable, seconds: Double, lost: Int) {
    var lines: [String] = []
    let lostText = lost > 0 ? paint("  \(lost) overrun(s): events lost", "31") : ""
    lines.append(
      paint("lbscope watch", "1") + "  \(seconds) s, \(table.events) events\(lostText)  (Ctrl-C to stop)")
    let services = table.services.values.sorted {
      ($0.connections, $1.frontend) > ($1.connections, $0.frontend)
    }
    if services.isEmpty { lines.append("  no Service connections yet") }
    for service in services.prefix(5) {
      let open = service.backends.values.reduce(0) { $0 + $1.open }
      lines.append(
        paint("\(service.proto) \(service.frontend)", "1")
          + "  \(service.connections) new connections, \(open) still in the table, \(service.backends.count) backends"
      )
      let backends = service.backends.sorted { $0.key < $1.key }
      let most = backends.map(\.value.connections).max() ?? 1
      for (address, backend) in backends.prefix(12) {
        let share = service.connections > 0 ? Double(backend.connections) / Double(service.connections) : 0
        let bar = String(repeating: "█", count: max(1, backend.connections * 30 / max(most, 1)))
        lines.append(
          "  \(pad(address.description, 24)) \(pad(String(backend.connections), 7, right: true)) "
            + "\(pad(String(format1(share * 100)) + "%", 7, right: true))  \(paint(pad(bar, 30), "32"))  in table \(backend.open)"
        )
      }
      if backends.count > 12 { lines.append("  … \(backends.count - 12) more backends") }
      let sticky = table.stickyClients(service)
      if !sticky.isEmpty {
        let shown = sticky.prefix(3).map { "\($0.0) → \($0.1) (\($0.2))" }.joined(separator: ", ")
        lines.append(
          "  " + paint("pinned to one backend:", "33") + " \(shown)"
            + (sticky.count > 3 ? ", … \(sticky.count - 3) more" : ""))
      }
    }
    var text = linesDrawn > 0 ? "\u{1B}[\(linesDrawn)A\u{1B}[J" : ""
    text += lines.joined(separator: "\n") + "\n"
    linesDrawn = lines.count
    _ = try? FileDescriptor.standardOutput.writeAll(text.utf8)
  }

  /// Leaves the last drawing on screen, with a blank line before the report.
  func finish() {
    _ = try? FileDescriptor.standardOutput.writeAll("\n".utf8)
  }

  func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return right ? fill + text : text + fill
  }

  func format1(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10)"
  }
}
