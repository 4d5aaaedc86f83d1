import LBCore

/// Everything one IPVS dump says: its services, the connections `-Lnc` lists, and persistence
/// templates that no service in the same file explains.
public struct IPVSReadResult: Sendable {
  public var services: [ServiceRule]
  public var summary: InputSummary
  /// `ipvsadm -Lnc` entries other than persistence templates: client → virtual → real server.
  public var connections: [ConnectionObservation]
  /// Persistence templates (`-Lnc`, client port 0, state NONE) whose virtual service is not in
  /// the same input; link them with `IPVSRulesReader.link(_:into:)`.
  public var unlinkedPins: [PinnedClient]
}

/// Reads IPVS state as `ipvsadm` prints it: `-Ln`, `-Ln --stats` (with or without `--exact`),
/// `-Ln --rate`, `-Ln --persistent-conn`, `-Ln --thresholds`, `-Lnc` (connection entries and
/// persistence templates) and `-S -n` (save form). Several sections may follow each other in
/// one file (a bundle): each title line switches the layout, and sections about the same
/// virtual service merge.
///
/// Column layouts and number formats follow ipvsadm.c (`print_title`, `print_service_entry`,
/// `print_largenum`, `print_conn`): without `--exact`, counters of 10^8 and more are printed
/// as `NNNK`, `NNNM`, `NNNG`, `NNNT` (thousands, millions, …, rounded down), which this reader
/// multiplies back and notes as lower bounds.
public enum IPVSRulesReader {
  /// Services and summary, as every rules reader returns them.
  public static func read(path: String, input: Int) throws(RulesReaderError) -> (
    services: [ServiceRule], summary: InputSummary
  ) {
    let result = try readAll(path: path, input: input)
    return (result.services, result.summary)
  }

  /// Everything: services, `-Lnc` connections and templates not linked to a service.
  public static func readAll(path: String, input: Int) throws(RulesReaderError) -> IPVSReadResult {
    var parser = IPVSParser(input: input, summary: InputSummary(path: path, kind: .ipvs))
    let cut = try DatapathTextFile.forEachLine(path: path) { line, number, overlong in
      parser.feed(line, number: number, overlong: overlong)
    }
    var result = parser.finish(lastLineCut: cut)
    if !parser.recognised {
      throw RulesReaderError(
        code: .notRules, path: path, line: result.summary.examples.first?.line,
        reason: "no ipvsadm output in \(result.summary.records) lines",
        hint: "lbscope rules reads \(RulesReaderError.knownFormats)")
    }
    result.services = sortedDatapathServices(result.services)
    return result
  }

  /// Whether the first lines look like ipvsadm output.
  public static func looksLike(_ firstLines: [Substring]) -> Bool {
    for raw in firstLines {
      let line = raw.trimmedBlanks
      if line.isEmpty { continue }
      if line.hasPrefix("IP Virtual Server version") || line.hasPrefix("Prot LocalAddress:Port")
        || line.hasPrefix("IPVS connection entries") || line.hasPrefix("pro expire state")
      {
        return true
      }
      let words = line.split(separator: " ")
      if words.count >= 3, words[0] == "-A" || words[0] == "-a",
        IPVSParser.serviceOptions.contains(words[1])
      {
        return true
      }
      return false
    }
    return false
  }

  /// Attaches pinned clients to the IPVS services whose virtual address and protocol they name
  /// (`list` is `TCP 10.0.0.1:443`); returns the pins no service explains.
  public static func link(_ pins: [PinnedClient], into services: inout [ServiceRule]) -> [PinnedClient] {
    var unlinked: [PinnedClient] = []
    for pin in pins {
      if let i = services.firstIndex(where: { s in
        s.source == .ipvs && s.chain.map { IPVSParser.sameVirtual($0, pin.list) } == true
      }) {
        services[i].pinnedClients.append(pin)
      } else {
        unlinked.append(pin)
      }
    }
    return unlinked
  }
}

/// The line-by-line state machine behind `IPVSRulesReader`.
struct IPVSParser {
  enum Layout { case list, stats, rate, persistentConn, thresholds, connections, save }

  static let serviceOptions: Set<Substring> = [
    "-t", "-u", "-f", "--tcp-service", "--udp-service", "--sctp-service", "--fwmark-service",
  ]

  let input: Int
  var summary: InputSummary
  var layout: Layout = .list
  var recognised = false
  var services: [ServiceRule] = []
  var index: [String: Int] = [:]
  var current: Int?
  var connections: [ConnectionObservation] = []
  var pins: [PinnedClient] = []
  var roundedNumbers = 0
  /// Services with a real server this reader could not read: their shares stay unknown.
  var incomplete = Set<Int>()
  var sawStats = false
  /// A short line that may be the cut last line of the input: malformed unless nothing follows.
  var pendingShort: InputIssue?
  /// The number of the last line, when it was not blank.
  var lastContentLine = 0

  init(input: Int, summary: InputSummary) {
    self.input = input
    self.summary = summary
  }

  // MARK: - Lines

  mutating func feed(_ raw: Substring, number: Int, overlong: Bool) {
    if let pending = pendingShort {
      summary.record(pending)
      pendingShort = nil
    }
    let line = raw.trimmedBlanks
    lastContentLine = line.isEmpty ? 0 : number
    if line.isEmpty { return }
    summary.records += 1
    if overlong {
      summary.record(InputIssue(kind: .malformed, line: number, message: "line too long for ipvsadm output"))
      return
    }
    if title(line) {
      recognised = true
      return
    }
    let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
    guard let first = words.first else { return }
    if first == "->" {
      realServer(words, number: number)
    } else if first == "-A" || first == "-a" || first == "-E" || first == "-e" {
      recognised = true
      layout = .save
      saveLine(words, number: number)
    } else if layout == .connections {
      connection(words, number: number)
    } else if ["TCP", "UDP", "SCTP", "FWM"].contains(first) {
      virtualService(words, number: number)
    } else if line.hasPrefix("Timeout (tcp tcpfin udp)") || line.hasPrefix("master sync daemon")
      || line.hasPrefix("backup sync daemon")
    {
      return
    } else {
      summary.record(
        InputIssue(
          kind: .unsupported, line: number, message: "not ipvsadm output: \(String(line.prefix(40)))"))
    }
  }

  /// Title lines switch the layout of the lines that follow.
  mutating func title(_ line: Substring) -> Bool {
    if line.hasPrefix("IP Virtual Server version") {
      current = nil
      layout = .list
      return true
    }
    if line.hasPrefix("IPVS connection entries") {
      layout = .connections
      current = nil
      return true
    }
    if line.hasPrefix("pro expire") {
      layout = .connections
      return true
    }
    if line.hasPrefix("-> RemoteAddress:Port") { return true }
    guard line.hasPrefix("Prot LocalAddress:Port") else { return false }
    current = nil
    if line.contains("Conns") && line.contains("InPkts") {
      layout = .stats
      sawStats = true
    } else if line.contains("CPS") {
      layout = .rate
    } else if line.contains("PersistConn") {
      layout = .persistentConn
    } else if line.contains("Uthreshold") {
      layout = .thresholds
    } else {
      layout = .list
    }
    return true
  }

  mutating func finish(lastLineCut: Bool) -> IPVSReadResult {
    if lastLineCut && pendingShort == nil && lastContentLine > 0 {
      summary.record(
        InputIssue(
          kind: .truncated, line: lastContentLine,
          message: "last line has no line end: cut, its numbers may be short"))
      summary.partial = true
    }
    if var pending = pendingShort {
      pending.kind = .truncated
      pending.message += " (last line, cut)"
      summary.record(pending)
      summary.partial = true
      pendingShort = nil
    }
    // Expected shares from scheduler and weights, once every section is in.
    var notes = Set<String>()
    for i in services.indices {
      let weights = services[i].backends.map { $0.weight ?? 1 }
      let haveWeights = services[i].backends.allSatisfy { $0.weight != nil }
      guard let scheduler = services[i].scheduler, haveWeights, !incomplete.contains(i) else { continue }
      let (shares, note) = IPVSScheduler.expectedShares(scheduler: scheduler, weights: weights)
      if let note { notes.insert(note) }
      if let shares {
        for j in services[i].backends.indices {
          services[i].backends[j].expectedShare = shares[j]
          services[i].backends[j].expectedShareExternal = shares[j]
        }
      }
    }
    summary.notes += notes.sorted()
    if roundedNumbers > 0 {
      summary.notes.append(
        "\(roundedNumbers) counters carry K/M/G/T suffixes (ipvsadm without --exact): rounded down, lower bounds"
      )
    }
    var services = self.services
    for i in services.indices where services[i].backends.contains(where: { $0.observedConnections != nil }) {
      services[i].observedCounterSource =
        roundedNumbers > 0 ? "ipvsadm --stats Conns (rounded)" : "ipvsadm --stats Conns"
    }
    let unlinked = IPVSRulesReader.link(pins, into: &services)
    for i in services.indices {
      services[i].pinnedClients.sort {
        ($0.client, $0.expiresInSeconds ?? 0) < ($1.client, $1.expiresInSeconds ?? 0)
      }
    }
    return IPVSReadResult(
      services: services, summary: summary, connections: connections, unlinkedPins: unlinked)
  }

  // MARK: - Virtual services

  /// `TCP  10.0.0.1:443 rr persistent 10800 mask 255.255.255.0` (list, persistent-conn,
  /// thresholds) or `TCP  10.0.0.1:443  14209  111769 …` (stats, rate); `FWM  5 [IPv6] rr`.
  mutating func virtualService(_ words: [Substring], number: Int) {
    recognised = true
    current = nil
    guard words.count >= 2 else {
      short("virtual service line without an address", number: number)
      return
    }
    var rest = words.dropFirst(2)
    let proto = Self.transport(words[0])
    var frontend: ServiceFrontend?
    if words[0] == "FWM" {
      guard let mark = UInt32(words[1]) else {
        summary.record(InputIssue(kind: .malformed, line: number, message: "FWM without a mark number"))
        return
      }
      if rest.first == "IPv6" { rest = rest.dropFirst() }
      frontend = ServiceFrontend(address: nil, port: 0, kind: .firewallMark, firewallMark: mark)
    } else if let endpoint = Self.endpoint(words[1]) {
      frontend = ServiceFrontend(address: endpoint.address, port: endpoint.port, kind: .unknown)
    }
    guard let frontend else {
      // ipvsadm without -n: a host or service name; keep what the real servers say.
      summary.record(
        InputIssue(
          kind: .unsupported, line: number,
          message: "virtual service \(words[1]) is not numeric (ipvsadm without -n)"))
      services.append(
        ServiceRule(
          name: nil, proto: proto ?? .tcp, scheduler: rest.first.map(String.init), source: .ipvs,
          chain: "\(words[0]) \(words[1])", location: SourceLocation(input: input, line: number)))
      current = services.count - 1
      return
    }
    let label =
      frontend.kind == .firewallMark
      ? "FWM \(words[1])\(words.count > 2 && words[2] == "IPv6" ? " IPv6" : "")"
      : "\(words[0]) \(frontend)"
    let key = Self.key(label)
    let i: Int
    if let existing = index[key] {
      i = existing
    } else {
      services.append(
        ServiceRule(
          name: nil, proto: proto ?? .tcp, frontends: [frontend], source: .ipvs, chain: label,
          location: SourceLocation(input: input, line: number)))
      i = services.count - 1
      index[key] = i
    }
    current = i
    switch layout {
    case .stats, .rate:
      if rest.count < 5 { short("virtual service counters cut short", number: number) }
    default:
      guard let scheduler = rest.first else {
        short("virtual service without a scheduler", number: number)
        return
      }
      services[i].scheduler = String(scheduler)
      var options = Array(rest.dropFirst())
      // ipvsadm ≥ 1.29 prints scheduler flags in parentheses: `sh (sh-fallback,sh-port)`.
      options.removeAll { $0.hasPrefix("(") || $0.hasSuffix(")") }
      var j = 0
      while j < options.count {
        switch options[j] {
        case "persistent":
          let timeout = j + 1 < options.count ? Int(options[j + 1]) : nil
          if timeout == nil {
            summary.record(InputIssue(kind: .malformed, line: number, message: "persistent without seconds"))
          }
          services[i].affinity = AffinityRule(
            timeoutSeconds: timeout, source: .ipvs, netmask: services[i].affinity?.netmask)
          j += 2
        case "mask":
          if j + 1 < options.count {
            let mask = String(options[j + 1])
            if mask != "255.255.255.255" && mask != "128" {
              services[i].affinity?.netmask = mask
            }
          }
          j += 2
        case "pe":
          j += 2
        default:
          j += 1
        }
      }
    }
  }

  // MARK: - Real servers

  /// `-> 10.244.0.235:8080  Masq  1  0  0` and the other layouts' columns.
  mutating func realServer(_ words: [Substring], number: Int) {
    recognised = true
    guard let i = current else {
      summary.record(
        InputIssue(kind: .malformed, line: number, message: "real server before any virtual service"))
      return
    }
    guard words.count >= 2 else {
      short("real server line without an address", number: number)
      return
    }
    guard let endpoint = Self.endpoint(words[1]) else {
      summary.record(
        InputIssue(
          kind: .unsupported, line: number,
          message: "real server \(words[1]) is not numeric (ipvsadm without -n)"))
      incomplete.insert(i)
      return
    }
    let columns = Array(words.dropFirst(2))
    var backend = BackendRule(endpoint: endpoint, location: SourceLocation(input: input, line: number))
    let needed: Int
    switch layout {
    case .list, .save, .connections:
      needed = 4
      if columns.count >= 4 {
        backend.forwarding = String(columns[0])
        backend.weight = Int(columns[1])
        backend.activeConnections = UInt64(columns[2])
        backend.inactiveConnections = UInt64(columns[3])
        if columns[0] == "FullNat" { services[i].masquerade.insert(.other) }
      }
    case .persistentConn:
      needed = 4
      if columns.count >= 4 {
        backend.weight = Int(columns[0])
        backend.activeConnections = UInt64(columns[2])
        backend.inactiveConnections = UInt64(columns[3])
        if columns[1] != "0" {
          summary.notes.append(
            "\(services[i].chain ?? "?") → \(endpoint): \(columns[1]) persistent connections")
        }
      }
    case .thresholds:
      needed = 4
      if columns.count >= 4 {
        backend.activeConnections = UInt64(columns[2])
        backend.inactiveConnections = UInt64(columns[3])
      }
    case .stats:
      needed = 5
      if columns.count >= 5 {
        let values = columns.prefix(5).map { largeNumber($0) }
        if values.contains(where: { $0 == nil }) {
          summary.record(InputIssue(kind: .malformed, line: number, message: "stats column is not a number"))
        }
        backend.observedConnections = values[0]
        if let a = values[1], let b = values[2] { backend.observedPackets = a &+ b }
        if let a = values[3], let b = values[4] { backend.observedBytes = a &+ b }
      }
    case .rate:
      needed = 5
    }
    if columns.count < needed {
      short("real server line has \(columns.count) of \(needed) columns", number: number)
      if columns.isEmpty { return }
    }
    merge(backend, into: i)
  }

  /// Sections about the same real server fill in each other's columns.
  mutating func merge(_ backend: BackendRule, into i: Int) {
    guard let j = services[i].backends.firstIndex(where: { $0.endpoint == backend.endpoint }) else {
      services[i].backends.append(backend)
      return
    }
    var b = services[i].backends[j]
    b.forwarding = b.forwarding ?? backend.forwarding
    b.weight = backend.weight ?? b.weight
    b.activeConnections = backend.activeConnections ?? b.activeConnections
    b.inactiveConnections = backend.inactiveConnections ?? b.inactiveConnections
    b.observedConnections = backend.observedConnections ?? b.observedConnections
    b.observedPackets = backend.observedPackets ?? b.observedPackets
    b.observedBytes = backend.observedBytes ?? b.observedBytes
    services[i].backends[j] = b
  }

  /// ipvsadm's `print_largenum`: plain below 10^8, else `NNNK`/`M`/`G`/`T` (rounded down).
  mutating func largeNumber(_ text: Substring) -> UInt64? {
    guard let last = text.last else { return nil }
    let scale: UInt64
    switch last {
    case "K": scale = 1_000
    case "M": scale = 1_000_000
    case "G": scale = 1_000_000_000
    case "T": scale = 1_000_000_000_000
    default: return UInt64(text)
    }
    guard let value = UInt64(text.dropLast()) else { return nil }
    roundedNumbers += 1
    let (product, overflow) = value.multipliedReportingOverflow(by: scale)
    return overflow ? UInt64.max : product
  }

  // MARK: - Save form

  /// `-A -t 10.1.0.1:443 -s rr -p 10800` and `-a -t 10.1.0.1:443 -r 10.2.0.10:8080 -m -w 1`.
  mutating func saveLine(_ words: [Substring], number: Int) {
    var proto: TransportProtocol = .tcp
    var virtual: Substring?
    var fwmark: UInt32?
    var scheduler: Substring?
    var persistent: Int?
    var netmask: String?
    var real: Substring?
    var forwarding: String?
    var weight: Int?
    var ipv6 = false
    var j = 1
    func value() -> Substring? { j + 1 < words.count ? words[j + 1] : nil }
    while j < words.count {
      let w = words[j]
      switch w {
      case "-t", "--tcp-service": (proto, virtual) = (.tcp, value()); j += 2
      case "-u", "--udp-service": (proto, virtual) = (.udp, value()); j += 2
      case "--sctp-service": (proto, virtual) = (.sctp, value()); j += 2
      case "-f", "--fwmark-service": fwmark = value().flatMap { UInt32($0) }; j += 2
      case "-s", "--scheduler": scheduler = value(); j += 2
      case "-p", "--persistent":
        if let v = value(), let seconds = Int(v) {
          persistent = seconds
          j += 2
        } else {
          persistent = 300  // ipvsadm's default persistence timeout
          j += 1
        }
      case "-M", "--netmask": netmask = value().map(String.init); j += 2
      case "-r", "--real-server": real = value(); j += 2
      case "-m", "--masquerading": forwarding = "Masq"; j += 1
      case "-g", "--gatewaying": forwarding = "Route"; j += 1
      case "-i", "--ipip": forwarding = "Tunnel"; j += 1
      case "-w", "--weight": weight = value().flatMap { Int($0) }; j += 2
      case "-6", "--ipv6": ipv6 = true; j += 1
      case "-x", "-y", "--u-threshold", "--l-threshold", "-b", "--sched-flags", "--pe": j += 2
      default:
        summary.record(InputIssue(kind: .unsupported, line: number, message: "ipvsadm option \(w) not read"))
        j += 1
      }
    }
    let label: String
    let frontend: ServiceFrontend
    if let fwmark {
      label = "FWM \(fwmark)\(ipv6 ? " IPv6" : "")"
      frontend = ServiceFrontend(address: nil, port: 0, kind: .firewallMark, firewallMark: fwmark)
    } else if let virtual, let endpoint = Self.endpoint(virtual) {
      label = "\(proto == .tcp ? "TCP" : proto == .udp ? "UDP" : "SCTP") \(endpoint)"
      frontend = ServiceFrontend(address: endpoint.address, port: endpoint.port, kind: .unknown)
    } else {
      short("ipvsadm rule without a readable virtual service", number: number)
      return
    }
    let key = Self.key(label)
    if words[0] == "-A" || words[0] == "-E" {
      let i: Int
      if let existing = index[key] {
        i = existing
      } else {
        services.append(
          ServiceRule(
            name: nil, proto: proto, frontends: [frontend], source: .ipvs, chain: label,
            location: SourceLocation(input: input, line: number)))
        i = services.count - 1
        index[key] = i
      }
      services[i].scheduler = scheduler.map(String.init) ?? "wlc"  // ipvsadm's default
      if let persistent {
        let mask = netmask.flatMap { $0 == "255.255.255.255" || $0 == "128" ? nil : $0 }
        services[i].affinity = AffinityRule(timeoutSeconds: persistent, source: .ipvs, netmask: mask)
      }
      current = i
      return
    }
    guard let i = index[key] else {
      summary.record(
        InputIssue(kind: .malformed, line: number, message: "real server for \(label) before its -A line"))
      return
    }
    guard let real, let endpoint = Self.endpoint(real) else {
      short("-a without a readable -r real server", number: number)
      return
    }
    var backend = BackendRule(
      endpoint: endpoint, weight: weight ?? 1, forwarding: forwarding ?? "Route",
      location: SourceLocation(input: input, line: number))
    backend.weight = weight ?? 1
    merge(backend, into: i)
  }

  // MARK: - Connection entries

  /// `TCP 14:59 ESTABLISHED 10.0.0.5:40000 10.96.0.1:443 10.244.1.2:6443`; a persistence
  /// template has client port 0 and state NONE.
  mutating func connection(_ words: [Substring], number: Int) {
    recognised = true
    guard words.count >= 6 else {
      short("connection entry has \(words.count) of 6 columns", number: number)
      return
    }
    guard let client = Self.endpoint(words[3]), let virtual = Self.endpoint(words[4]),
      let destination = Self.endpoint(words[5])
    else {
      summary.record(
        InputIssue(kind: .unsupported, line: number, message: "connection entry addresses are not numeric"))
      return
    }
    let proto = Self.transport(words[0]) ?? .tcp
    let expires = Self.minutesSeconds(words[1])
    if expires == nil {
      summary.record(InputIssue(kind: .malformed, line: number, message: "expire \(words[1]) is not MM:SS"))
    }
    let stateText = words[2]
    if stateText == "NONE" && client.port == 0 {
      pins.append(
        PinnedClient(
          client: client.address, backend: destination, expiresInSeconds: expires, source: .ipvs,
          list: "\(words[0]) \(virtual)", location: SourceLocation(input: input, line: number)))
      return
    }
    let state = Self.state(stateText)
    if state == nil, stateText != "UDP", stateText != "ICMP" {
      summary.record(
        InputIssue(
          kind: .unsupported, line: number, message: "connection state \(stateText) is not an IPVS state name"
        ))
    }
    connections.append(
      ConnectionObservation(
        original: FiveTuple(proto: proto, source: client, destination: virtual),
        translated: FiveTuple(proto: proto, source: client, destination: destination), state: state,
        replied: state.map { $0.impliesEstablished ? true : nil } ?? nil,
        assured: state?.impliesEstablished ?? false, location: SourceLocation(input: input, line: number)))
  }

  // MARK: - Helpers

  mutating func short(_ message: String, number: Int) {
    if let pending = pendingShort { summary.record(pending) }
    pendingShort = InputIssue(kind: .malformed, line: number, message: message)
  }

  static func transport(_ word: Substring) -> TransportProtocol? {
    switch word {
    case "TCP": .tcp
    case "UDP": .udp
    case "SCTP": .sctp
    default: nil
    }
  }

  /// `10.0.0.1:80` or `[2001:db8::1]:80`.
  static func endpoint(_ text: Substring) -> Endpoint? { Endpoint(String(text)) }

  /// `MM:SS`, minutes possibly above 99.
  static func minutesSeconds(_ text: Substring) -> Double? {
    guard let colon = text.firstIndex(of: ":"), let m = Int(text[..<colon]),
      let s = Int(text[text.index(after: colon)...]), s < 60
    else { return nil }
    return Double(m * 60 + s)
  }

  /// IPVS TCP/SCTP state names (`ip_vs_proto_tcp.c` `tcp_state_name_table`).
  static func state(_ text: Substring) -> ConnectionState? {
    switch text {
    case "NONE": ConnectionState.none
    case "ESTABLISHED": .established
    case "SYN_SENT": .synSent
    case "SYN_RECV", "SYNACK": .synReceived
    case "FIN_WAIT": .finWait
    case "TIME_WAIT": .timeWait
    case "CLOSE": .close
    case "CLOSE_WAIT": .closeWait
    case "LAST_ACK": .lastAck
    case "LISTEN": .listen
    default: nil
    }
  }

  /// One key for a virtual service whichever layout names it (`TCP  10.0.0.1:443`, `-t 10.0.0.1:443`).
  static func key(_ label: String) -> String {
    label.split(separator: " ").joined(separator: " ")
  }

  static func sameVirtual(_ chain: String, _ list: String?) -> Bool {
    guard let list else { return false }
    return key(chain) == key(list)
  }
}
