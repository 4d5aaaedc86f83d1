import ArgumentParser
import LBAnalysis
import LBCore
import LBPcap
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

struct PcapCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pcap",
    abstract: "Analyse packet captures: join NAT legs, measure every backend from the wire.",
    discussion: """
      Reads pcap and pcapng files (several are merged by time), for example a node's
      `tcpdump -i any -w node.pcap`, which holds both sides of kube-proxy's NAT:

        lbscope pcap node.pcap --service 10.96.0.10:80
        lbscope pcap a.pcapng b.pcap --filter 'tcp port 80' --format json
      """
  )

  @Argument(help: ArgumentHelp("Capture files (pcap or pcapng).", valueName: "FILE"))
  var files: [String] = []

  @Option(help: ArgumentHelp("Only analyse frames matching this pcap-filter expression.", valueName: "BPF"))
  var filter: String?

  @Option(
    help: "Flows tracked at once (about 300 bytes each); past it the oldest idle ones are finished early.")
  var maxFlows: Int = 1_000_000

  @OptionGroup var report: ReportOptions

  func validate() throws {
    if files.isEmpty { throw ValidationError("give at least one capture FILE") }
    if files.contains("-") {
      throw ValidationError("captures are read from files; save standard input first")
    }
    guard maxFlows >= 16 else { throw ValidationError("--max-flows must be at least 16") }
  }

  func run() throws {
    Interrupt.install(output: report.output)
    var options = TraceOptions()
    options.filter = filter
    options.maxFlows = maxFlows
    var analyzer = ConnectionAnalyzer(options: report.analysisOptions)
    let trace: TraceReader
    do {
      trace = try TraceReader(paths: files, options: options)
    } catch {
      Failure(error).exit()
    }
    let progress = ProgressLine()
    do {
      try trace.run(progress: progress.map { line in { line.show($0) } }) { analyzer.add($0) }
    } catch {
      progress?.clear()
      Failure(error).exit()
    }
    progress?.clear()
    var result = analyzer.finish(inputs: trace.summaries)
    result.addHostEstimates(trace.hostEstimates, options: report.analysisOptions)
    result.addCookieAffinity(trace.cookieAffinity)
    try Output.write(result, options: report)
  }
}

/// A one-line progress display on standard error, only when it is a terminal.
final class ProgressLine {
  let started = monotonicSeconds()

  init?() {
    guard isatty(STDERR_FILENO) == 1 else { return nil }
  }

  static func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
  }

  func show(_ p: TraceProgress) {
    let elapsed = max(Self.monotonicSeconds() - started, 1e-3)
    let rate = Double(p.packets) / elapsed
    var text = "\r\(p.bytesRead >> 20) MiB"
    if p.bytesTotal > 0 {
      let fraction = Double(p.bytesRead) / Double(p.bytesTotal)
      text += " of \(p.bytesTotal >> 20) MiB (\(Int(fraction * 100))%)"
      if fraction > 0 {
        text += ", ETA \(Int(elapsed / fraction - elapsed)) s"
      }
    }
    text += ", \(p.packets) packets, \(Int(rate / 1000)) k packets/s   "
    _ = try? FileDescriptor.standardError.writeAll(text.utf8)
  }

  func clear() {
    _ = try? FileDescriptor.standardError.writeAll("\r\u{1B}[K".utf8)
  }
}
