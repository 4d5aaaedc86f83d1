import LBCore

/// What `RulesReader` needs besides the inputs.
public struct RulesReadOptions: Sendable {
  /// The node's jiffies and HZ at collection time, for xt_recent ages. When `nil`, a
  /// `jiffies.txt` beside the xt_recent files (or one directory up) is used if present.
  public var clock: JiffiesClock?
  /// Keep the parsed iptables dumps (for `--trace`); they cost memory on big rule sets.
  public var keepIptablesDumps = false

  public init(clock: JiffiesClock? = nil, keepIptablesDumps: Bool = false) {
    self.clock = clock
    self.keepIptablesDumps = keepIptablesDumps
  }
}

/// Everything read from the rules inputs of one run.
public struct RulesReadResult: Sendable {
  public var ruleSet: RuleSet
  /// The parsed iptables dumps, when `keepIptablesDumps` was set, in input order.
  public var iptablesDumps: [IptablesDump] = []
  /// The clock used for xt_recent ages, and where it came from.
  public var clock: JiffiesClock?
  public var clockSource: String?
  /// Connections listed by `ipvsadm -Lnc` (client → virtual service → real server).
  public var connections: [ConnectionObservation] = []
}

/// Reads rules inputs of any supported format into one `RuleSet`: detects each input's format
/// (or takes the one given), dispatches to the format's reader, then links xt_recent lists to
/// the endpoints whose `-m recent --set --name` writes them.
public enum RulesReader {
  /// Reads `paths` (files, `-`, or directories such as a collected `xt_recent/`), each with
  /// its format from `formats` (same index) or detected when `nil`/missing.
  public static func read(
    paths: [String], formats: [RulesFormat?] = [], options: RulesReadOptions = RulesReadOptions()
  ) throws(RulesReaderError) -> RulesReadResult {
    var result = RulesReadResult(ruleSet: RuleSet())
    var pins: [PinnedClient] = []
    var clock = options.clock
    var clockSource: String? = clock == nil ? nil : "given on the command line"
    var files: [(path: String, format: RulesFormat?)] = []
    for (i, path) in paths.enumerated() {
      let format = i < formats.count ? formats[i] : nil
      if path != "-" && RulesFile.isDirectory(path) {
        for name in RulesFile.directoryEntries(path) where !sideFiles.contains(name) {
          let full = path.hasSuffix("/") ? path + name : path + "/" + name
          if !RulesFile.isDirectory(full) { files.append((full, format)) }
        }
      } else {
        files.append((path, format))
      }
    }
    for (path, given) in files {
      let input = result.ruleSet.inputs.count
      let format: RulesFormat
      if let given { format = given } else { format = try detect(path: path) }
      switch format {
      case .iptablesSave:
        let (dump, summary) = try IptablesSaveReader.read(path: path)
        let services = IptablesServices(dump: dump, input: input).services()
        result.ruleSet.services += services
        result.ruleSet.inputs.append(summary)
        if options.keepIptablesDumps { result.iptablesDumps.append(dump) }
      case .xtRecent:
        let (listPins, summary) = try XTRecentReader.read(path: path, input: input)
        pins += listPins
        result.ruleSet.inputs.append(summary)
        if clock == nil, let found = clockBeside(path) {
          clock = found.clock
          clockSource = found.path
        }
      case .nft:
        let (services, summary) = try NFTRulesReader.read(path: path, input: input)
        result.ruleSet.services += services
        result.ruleSet.inputs.append(summary)
      case .ipvs:
        let read = try IPVSRulesReader.readAll(path: path, input: input)
        var services = read.services
        result.ruleSet.unlinkedPins += IPVSRulesReader.link(read.unlinkedPins, into: &services)
        result.ruleSet.services += services
        result.ruleSet.inputs.append(read.summary)
        result.connections += read.connections
      }
    }
    link(pins, into: &result.ruleSet, clock: clock)
    result.ruleSet.services.sort(by: IptablesServices.order)
    result.clock = clock
    result.clockSource = clockSource
    return result
  }

  /// The xt_recent lists the run read, by name, with the sources they hold (for `--trace`);
  /// `nil` when no xt_recent input was given.
  public static func recentLists(_ ruleSet: RuleSet) -> [String: Set<IPAddress>]? {
    guard ruleSet.inputs.contains(where: { $0.kind == .xtRecent }) else { return nil }
    var lists: [String: Set<IPAddress>] = [:]
    for pin in ruleSet.services.flatMap(\.pinnedClients) + ruleSet.unlinkedPins {
      if let list = pin.list { lists[list, default: []].insert(pin.client) }
    }
    return lists
  }

  /// Files of a collected directory that are not rules.
  static let sideFiles: Set<String> = ["jiffies.txt", "README.md", "truth.json"]

  /// Attaches each pinned client to the endpoint whose affinity list it is in, with its age
  /// and time left when the clock and the affinity timeout are known.
  static func link(_ pins: [PinnedClient], into ruleSet: inout RuleSet, clock: JiffiesClock?) {
    var owners: [String: (service: Int, backend: Int)] = [:]
    for (s, service) in ruleSet.services.enumerated() {
      for (b, backend) in service.backends.enumerated() {
        if let list = backend.affinityList, owners[list] == nil { owners[list] = (s, b) }
      }
    }
    for var pin in pins {
      if let clock, let seen = pin.lastSeenJiffies { pin.lastSeenAgeSeconds = clock.age(of: seen) }
      guard let list = pin.list, let owner = owners[list] else {
        ruleSet.unlinkedPins.append(pin)
        continue
      }
      let service = ruleSet.services[owner.service]
      pin.backend = service.backends[owner.backend].endpoint
      if let age = pin.lastSeenAgeSeconds, let timeout = service.affinity?.timeoutSeconds {
        pin.expiresInSeconds = max(0, Double(timeout) - age)
      }
      ruleSet.services[owner.service].pinnedClients.append(pin)
    }
    for s in ruleSet.services.indices {
      ruleSet.services[s].pinnedClients.sort {
        ($0.backend?.description ?? "", $0.client) < ($1.backend?.description ?? "", $1.client)
      }
    }
  }

  /// `jiffies.txt` in the file's directory or the one above it (`captures/NAME/xt_recent/…`).
  static func clockBeside(_ path: String) -> (clock: JiffiesClock, path: String)? {
    var directory = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(
      separator: "/")
    if !path.contains("/") { directory = "." }
    for candidate in [directory, directory + "/.."] {
      let file = (candidate.isEmpty ? "" : candidate + "/") + "jiffies.txt"
      if let bytes = RulesFile.head(file),
        let clock = JiffiesClock.parse(String(decoding: bytes, as: UTF8.self))
      {
        return (clock, file)
      }
    }
    return nil
  }

  /// The format of `path`, from its first meaningful lines. Standard input and pipes (a FIFO,
  /// `<(iptables-save)`) cannot be read twice: they are iptables-save unless `--input-format`
  /// names another format.
  public static func detect(path: String) throws(RulesReaderError) -> RulesFormat {
    if path == "-" || RulesFile.isStream(path) { return .iptablesSave }
    guard let head = RulesFile.head(path, limit: 16 * 1024) else {
      throw RulesReaderError(
        code: .cannotOpen, path: path, reason: "cannot open", hint: "check the path and permissions")
    }
    if let format = detect(head: head, name: path) { return format }
    throw RulesReaderError(
      code: .notRules, path: path, reason: "not a rules dump lbscope recognises",
      hint: "lbscope rules reads \(RulesReaderError.knownFormats); name the format with --input-format")
  }

  /// Sniffs the first meaningful lines of a dump. An empty file in an `xt_recent` directory
  /// (or named `KUBE-SEP-…`) is an empty xt_recent list.
  public static func detect(head: [UInt8], name: String) -> RulesFormat? {
    let text = String(decoding: head, as: UTF8.self)
    var looked = 0
    for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
      let line = raw.drop { $0 == " " || $0 == "\t" }
      if line.isEmpty { continue }
      looked += 1
      if looked > 40 { break }
      if line.hasPrefix("src=") { return .xtRecent }
      if line.hasPrefix("IP Virtual Server") || line.hasPrefix("Prot LocalAddress") || line.hasPrefix("-A -t")
        || line.hasPrefix("-A -u") || line.hasPrefix("-A -f") || line.hasPrefix("Pro FromIP")
        || line.hasPrefix("IPVS connection entries")
      {
        return .ipvs
      }

      if line.hasPrefix("# Generated by iptables") || line.hasPrefix("# Generated by ip6tables") {
        return .iptablesSave
      }
      if line.hasPrefix("#") { continue }
      if line.hasPrefix("*nat") || line.hasPrefix("*filter") || line.hasPrefix("*mangle")
        || line.hasPrefix("*raw")
        || line.hasPrefix("-A ") || line.hasPrefix("-N ") || line.hasPrefix("-P ")
        || (line.hasPrefix("[") && line.contains("] -A "))
        || (line.hasPrefix(":") && line.contains(" ["))
      {
        return .iptablesSave
      }
      if line.hasPrefix("table ip") || line.hasPrefix("table inet") || line.hasPrefix("add table")
        || line.hasPrefix("add rule") || line.hasPrefix("add chain") || line.hasPrefix("flush ruleset")
        || line.hasPrefix("add set") || line.hasPrefix("add element") || line.hasPrefix("add map")
      {
        return .nft
      }
    }
    let firstLines = Array(text.split(separator: "\n", omittingEmptySubsequences: true).prefix(40))
    if NFTRulesReader.looksLike(firstLines) { return .nft }
    if IPVSRulesReader.looksLike(firstLines) { return .ipvs }
    if looked == 0 {
      let parts = name.split(separator: "/")
      if parts.last?.hasPrefix("KUBE-SEP-") == true || parts.dropLast().last == "xt_recent" {
        return .xtRecent
      }
    }
    return nil
  }
}
