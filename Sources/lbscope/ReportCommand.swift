import ArgumentParser
import LBAnalysis
import LBBundle
import LBConntrack
import LBCore
import LBPcap
import LBReport
import LBRules
import LBYAML
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

struct ReportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "report",
    abstract: "The incident report: correlate every input per service, explain the cause, name the fix.",
    discussion: """
      Takes any mix of conntrack dumps and events, rules (iptables-save, nft list ruleset,
      ipvsadm), xt_recent lists, pcap/pcapng captures and collect bundles; each input's kind is
      detected. Joins them per service (expected shares from the rules, observed counts from every
      source, pinned clients), says which source it trusts, and diagnoses cause before symptom:

        lbscope report captures/affinity-nat/{conntrack-L.txt,iptables-save.txt,xt_recent,node.pcap}
        lbscope report node-bundle.tar.gz --k8s cluster.json --format json
      """
  )

  @Argument(help: ArgumentHelp("Inputs of any supported kind, or collect bundles.", valueName: "INPUT"))
  var inputs: [String] = []

  @Option(
    help: ArgumentHelp(
      "`kubectl get pods,services,endpointslices -A -o json` (or `-o yaml`) saved earlier, for Pod, Service and node names.",
      valueName: "FILE"))
  var k8s: String?

  @OptionGroup var report: ReportOptions

  func validate() throws {
    if inputs.isEmpty { throw ValidationError("give at least one INPUT") }
    if inputs.contains("-") { throw ValidationError("report reads files; save standard input first") }
  }

  /// What an input is, from its own bytes (or a bundle's manifest).
  enum Kind { case conntrack, capture, rules }

  struct UnknownInput: LocatedError {
    var path: String?
    var line: Int? { nil }
    var reason: String
    var hint: String
    var category: FailureCategory { .unrecognizedInput }
  }

  static let formats =
    "conntrack -L (text, -o extended, -o xml), /proc/net/nf_conntrack, conntrack -E, iptables-save, nft list ruleset, ipvsadm -Ln, xt_recent lists, pcap/pcapng, or an lbscope collect bundle"

  static func detect(_ path: String) throws -> Kind {
    if InputPath.isDirectoryPath(path) { return .rules }  // a collected xt_recent/ directory
    if InputPath.isStream(path) {
      // Sniffing would consume the head that the reader needs (and reopening waits for a new
      // writer): refuse instead of hanging.
      throw UnknownInput(
        path: path, reason: "is a FIFO or pipe, and report detects each input's kind from its first bytes",
        hint:
          "give it to the command for its kind (lbscope conntrack, rules or pcap), or save it to a file first"
      )
    }
    guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly) else {
      throw UnknownInput(path: path, reason: "cannot open", hint: "check the path and permissions")
    }
    defer { try? fd.close() }
    var head = [UInt8](repeating: 0, count: 16 * 1024)
    let count = (try? head.withUnsafeMutableBytes { try fd.read(into: $0) }) ?? 0
    head.removeLast(head.count - count)
    if count >= 4 {
      let magic = UInt32(head[0]) << 24 | UInt32(head[1]) << 16 | UInt32(head[2]) << 8 | UInt32(head[3])
      if [0xA1B2_C3D4, 0xD4C3_B2A1, 0xA1B2_3C4D, 0x4D3C_B2A1, 0x0A0D_0D0A].contains(magic) {
        return .capture
      }
    }
    if RulesReader.detect(head: head, name: path) != nil { return .rules }
    let text = String(decoding: head.prefix(4096), as: UTF8.self)
    for line in text.split(separator: "\n").prefix(20) {
      // An empty table is still a conntrack dump: only the summary line conntrack writes.
      if line.contains("flow entries have been shown") { return .conntrack }
      let words = line.split(separator: " ", omittingEmptySubsequences: true)
      guard let first = words.first else { continue }
      if ["tcp", "udp", "icmp", "sctp", "dccp", "gre", "icmpv6", "udplite", "unknown", "ipv4", "ipv6"]
        .contains(first)
        || first.hasPrefix("[") || first.hasPrefix("<?xml") || first.hasPrefix("<conntrack")
      {
        return .conntrack
      }
    }
    throw UnknownInput(path: path, reason: "not an input lbscope report recognises", hint: "give \(formats)")
  }

  /// The inputs sorted by reader; bundles stay open (archives extracted) while they live.
  struct Classified {
    var conntrack: [(path: String, shown: String, events: Bool)] = []
    var captures: [String] = []
    var rules: [String] = []
    var bundles: [Bundle] = []
  }

  static func classify(_ inputs: [String]) throws -> Classified {
    var c = Classified()
    for path in inputs {
      if Bundle.isBundle(path) {
        let bundle = try Bundle.open(path)
        c.bundles.append(bundle)
        // A tool that printed nothing (no IPv6 rules, no IPVS) left an empty file: nothing to read.
        for file in bundle.files where !InputPath.isEmptyFile(file.path) {
          switch file.kind {
          case .conntrack?: c.conntrack.append((file.path, path + "/" + file.name, false))
          case .conntrackEvents?: c.conntrack.append((file.path, path + "/" + file.name, true))
          case .pcap?: c.captures.append(file.path)
          case .nft?:
            // On a node in iptables mode, `nft list ruleset` shows iptables-nft's copy of the
            // rules iptables-save already gave (without their probabilities): only kube-proxy's
            // own nftables-mode tables are read from it.
            if InputPath.contains(file.path, "kube-proxy {") { c.rules.append(file.path) }
          case .iptablesSave?, .ipvs?, .xtRecent?: c.rules.append(file.path)
          default: continue
          }
        }
        continue
      }
      switch try detect(path) {
      case .capture: c.captures.append(path)
      case .rules: c.rules.append(path)
      case .conntrack: c.conntrack.append((path, path, false))
      }
    }
    return c
  }

  static func classifyOrExit(_ inputs: [String]) -> Classified {
    do {
      return try classify(inputs)
    } catch let error as any LocatedError {
      Failure(error).exit()
    } catch {
      Failure(usage: "\(error)").exit()
    }
  }

  func run() throws {
    Interrupt.install(output: report.output)
    var classified = Self.classifyOrExit(inputs)
    let conntrackFiles = classified.conntrack
    let captureFiles = classified.captures
    let rulesFiles = classified.rules
    var options = report.analysisOptions
    options.clientsKept = 0  // stickiness is judged again against the rules' shares
    var observed: [ObservedSource] = []
    var summaries: [InputSummary] = []
    // Each conntrack input is a source of its own: a table and an event log of the same node
    // hold the same connections and must not be added together.
    for file in conntrackFiles {
      let (source, read) = Self.readConntrack(
        file.path, shown: file.shown, input: summaries.count, options: options)
      observed.append(source)
      summaries.append(read)
    }
    if !captureFiles.isEmpty {
      let (source, read) = Self.readCaptures(captureFiles, options: options)
      observed.append(source)
      summaries += read
    }
    var ruleSet: RuleSet?
    if !rulesFiles.isEmpty {
      do {
        let read = try RulesReader.read(paths: rulesFiles)
        ruleSet = read.ruleSet
        summaries += read.ruleSet.inputs
      } catch {
        Failure(error).exit()
      }
    }
    let names = k8s.map(Self.readNames) ?? ClusterNames()
    let incident = IncidentCorrelator(options: options).correlate(
      observed: observed, rules: ruleSet, names: names, inputs: summaries)
    classified.bundles.removeAll()  // extracted archives are deleted now
    try Output.write(incident, options: report)
  }
}

extension ReportCommand {
  static func readConntrack(_ path: String, shown: String, input: Int, options: AnalysisOptions)
    -> (ObservedSource, InputSummary)
  {
    var analyzer = ConnectionAnalyzer(options: options)
    var summary: InputSummary
    do {
      summary = try ConntrackReader().read(path: path, input: input, into: &analyzer)
    } catch {
      Failure(error).exit()
    }
    summary.path = shown
    let name = summary.kind == .conntrackEvents ? "conntrack-events" : "conntrack"
    return (ObservedSource(name: name, paths: [shown], result: analyzer.finish(inputs: [summary])), summary)
  }

  /// All captures as one trace (merged by time), analysed as one source.
  static func readCaptures(_ paths: [String], options: AnalysisOptions) -> (ObservedSource, [InputSummary]) {
    var analyzer = ConnectionAnalyzer(options: options)
    let trace: TraceReader
    do {
      trace = try TraceReader(paths: paths)
    } catch {
      Failure(error).exit()
    }
    do {
      try trace.run { analyzer.add($0) }
    } catch {
      Failure(error).exit()
    }
    let read = trace.summaries
    var result = analyzer.finish(inputs: read)
    result.addHostEstimates(trace.hostEstimates, options: options)
    result.addCookieAffinity(trace.cookieAffinity)
    let source = ObservedSource(
      name: "capture", paths: read.map(\.path), result: result,
      holdsBothLegs: trace.totals.joinedConnections > 0)
    return (source, read)
  }

  /// The names of a saved `kubectl get pods,services,endpointslices -A -o json` (or `-o yaml`).
  static func readNames(_ path: String) -> ClusterNames {
    let fd: FileDescriptor
    do {
      fd = try FileDescriptor.open(FilePath(path), .readOnly)
    } catch {
      Failure(UnknownInput(path: path, reason: "cannot open: \(error)", hint: "check the path")).exit()
    }
    defer { try? fd.close() }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while bytes.count <= 512 << 20 {
      let n = (try? chunk.withUnsafeMutableBytes { try fd.read(into: $0) }) ?? 0
      if n <= 0 { break }
      bytes += chunk.prefix(n)
    }
    do {
      return try KubernetesListing.names(from: bytes, path: path)
    } catch {
      Failure(error).exit()
    }
  }
}

extension Output {
  static func write(_ incident: IncidentResult, options: ReportOptions) throws {
    let tool = ToolInfo(version: LBScope.version)
    var anonymizer = options.anonymizer(names: ReportAnonymizer.names(in: incident.analysis))
    let text: [[UInt8]]
    switch options.format {
    case .json:
      let document = IncidentReport.document(incident, tool: tool, maxClients: options.jsonClients)
      text = (anonymizer?.apply(document) ?? document).renderedPieces()
    case .markdown:
      let markdown = IncidentReport.markdown(incident, tool: tool, topClients: options.topClients)
      text = [Array((anonymizer?.apply(markdown: markdown) ?? markdown).utf8)]
    }
    try deliver(
      text, inputs: incident.analysis.inputs, findings: incident.analysis.findings, options: options)
  }
}

enum InputPath {
  static func isDirectoryPath(_ path: String) -> Bool {
    var status = stat()
    return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
  }

  /// Whether `path` is a FIFO, socket or character device: it cannot be read twice.
  static func isStream(_ path: String) -> Bool {
    var status = stat()
    guard stat(path, &status) == 0 else { return false }
    let type = status.st_mode & S_IFMT
    return type == S_IFIFO || type == S_IFSOCK || type == S_IFCHR
  }

  /// Whether a file contains `needle` (read in 1 MiB chunks, so a large ruleset is never held).
  static func contains(_ path: String, _ needle: String) -> Bool {
    guard let fd = try? FileDescriptor.open(FilePath(path), .readOnly) else { return false }
    defer { try? fd.close() }
    let pattern = Array(needle.utf8)
    var window: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while let count = try? chunk.withUnsafeMutableBytes({ try fd.read(into: $0) }), count > 0 {
      // Keep the tail of the last chunk, so a match across the boundary is found.
      window = Array(window.suffix(pattern.count - 1)) + chunk[..<count]
      if window.count >= pattern.count,
        window.indices.dropLast(pattern.count - 1).contains(where: {
          window[$0..<($0 + pattern.count)].elementsEqual(pattern)
        })
      {
        return true
      }
    }
    return false
  }

  /// A regular file holding nothing, such as a bundle's `ip6tables-save.txt` on a node without
  /// IPv6 rules.
  static func isEmptyFile(_ path: String) -> Bool {
    var status = stat()
    return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFREG && status.st_size == 0
  }
}
