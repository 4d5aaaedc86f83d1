import LBAnalysis
import LBCore

/// Why a JSON report cannot be read back: a contract field missing or of the wrong kind.
public struct ReportReadError: LocatedError {
  public var path: String?
  public var line: Int? { nil }
  /// Where in the document, as `services[0].backends[2].address`.
  public var field: String
  public var problem: String
  public var category: FailureCategory { .unrecognizedInput }
  public var reason: String { "\(field): \(problem)" }
  public var hint: String { "give a JSON report written by `lbscope … --format json` (schema version 1)" }
}

/// Reads an lbscope JSON report (schema version 1, `../shared/REPORT-CONTRACT.md`) back into an
/// analysis result: the inverse of `JSONReport`, strict about the contract's fields, lenient
/// about fields it does not know.
public struct ReportReader {
  let path: String

  /// `path` labels errors and names the node when the report has no `node` field.
  public init(path: String) { self.path = path }

  /// Parses and reads one report file's bytes; throws `JSONParseError` or `ReportReadError`.
  public func read(_ bytes: [UInt8]) throws -> NodeReport {
    let document = try JSONParser().parse(bytes, path: path)
    return try read(document)
  }

  public func read(_ document: JSON) throws(ReportReadError) -> NodeReport {
    let root = try object(document, "report")
    guard case .int(let version)? = root["schemaVersion"] else { throw fail("schemaVersion", "missing") }
    guard version == Int64(JSONReport.schemaVersion) else {
      throw fail("schemaVersion", "is \(version); this lbscope reads version \(JSONReport.schemaVersion)")
    }
    let inputs = try array(root["inputs"], "inputs").enumerated().map { i, v throws(ReportReadError) in
      try input(v, "inputs[\(i)]")
    }
    let services = try array(root["services"], "services").enumerated().map { i, v throws(ReportReadError) in
      try service(v, "services[\(i)]")
    }
    let translated = try array(root["translatedSources"], "translatedSources").enumerated().map {
      i, v throws(ReportReadError) in try translatedSource(v, "translatedSources[\(i)]")
    }
    let findings = try array(root["findings"], "findings").enumerated().map { i, v throws(ReportReadError) in
      try finding(v, "findings[\(i)]")
    }
    let totals = try root["totals"].map { v throws(ReportReadError) in try object(v, "totals") } ?? [:]
    let serviceConnections = services.reduce(0) { $0 + $1.connections }
    let result = AnalysisResult.reported(
      inputs: inputs, services: services, translatedSources: translated, findings: findings,
      connections: try optionalInt(totals["connections"], "totals.connections") ?? serviceConnections,
      connectionsWithoutDNAT: try optionalInt(
        totals["connectionsWithoutDNAT"], "totals.connectionsWithoutDNAT") ?? 0,
      servicesFilteredOut: try optionalInt(totals["servicesFilteredOut"], "totals.servicesFilteredOut") ?? 0)
    let node = try optionalString(root["node"], "node") ?? Self.nodeName(fromPath: path)
    return NodeReport(node: node, path: path, result: result)
  }

  /// `reports/node-a.json` → `node-a`.
  public static func nodeName(fromPath path: String) -> String {
    var name = path.split(separator: "/").last.map(String.init) ?? path
    if name.hasSuffix(".json") { name.removeLast(5) }
    return name
  }

  // MARK: - Contract objects

  func input(_ value: JSON, _ at: String) throws(ReportReadError) -> InputSummary {
    let o = try object(value, at)
    let kindText = try string(o["kind"], "\(at).kind")
    guard let kind = InputKind(rawValue: kindText) else {
      throw fail("\(at).kind", "unknown kind '\(kindText)'")
    }
    var summary = InputSummary(path: try string(o["path"], "\(at).path"), kind: kind)
    summary.records = try int(o["records"], "\(at).records")
    let issues = try object(o["issues"] ?? .null, "\(at).issues")
    summary.truncated = try int(issues["truncated"], "\(at).issues.truncated")
    summary.malformed = try int(issues["malformed"], "\(at).issues.malformed")
    summary.unsupported = try int(issues["unsupported"], "\(at).issues.unsupported")
    summary.partial = try bool(o["partial"], "\(at).partial")
    if let notes = o["notes"] {
      summary.notes = try array(notes, "\(at).notes").map { v throws(ReportReadError) in
        try string(v, "\(at).notes")
      }
    }
    if let examples = o["issueExamples"] {
      for (i, example) in try array(examples, "\(at).issueExamples").enumerated() {
        let e = try object(example, "\(at).issueExamples[\(i)]")
        let kindText = try string(e["kind"], "\(at).issueExamples[\(i)].kind")
        guard let kind = InputIssueKind(rawValue: kindText) else {
          throw fail("\(at).issueExamples[\(i)].kind", "unknown issue kind '\(kindText)'")
        }
        summary.examples.append(
          InputIssue(
            kind: kind, line: try int(e["line"], "\(at).issueExamples[\(i)].line"),
            message: try string(e["message"], "\(at).issueExamples[\(i)].message")))
      }
    }
    return summary
  }

  func service(_ value: JSON, _ at: String) throws(ReportReadError) -> ServiceResult {
    let o = try object(value, at)
    let frontends = try array(o["frontends"], "\(at).frontends").map { v throws(ReportReadError) in
      try endpoint(v, "\(at).frontends")
    }
    let protoText = try string(o["protocol"], "\(at).protocol")
    guard let proto = Self.protocols[protoText] else {
      throw fail("\(at).protocol", "unknown protocol '\(protoText)'")
    }
    var affinity: Affinity? = nil
    if let a = o["affinity"], a != .null {
      let ao = try object(a, "\(at).affinity")
      affinity = Affinity(
        mode: try string(ao["mode"], "\(at).affinity.mode"),
        timeoutSeconds: try optionalInt(ao["timeoutSeconds"], "\(at).affinity.timeoutSeconds"),
        source: try string(ao["source"], "\(at).affinity.source"))
    }
    let backendValues = try array(o["backends"], "\(at).backends")
    var counts: [Int] = []
    for (i, b) in backendValues.enumerated() {
      counts.append(
        try int(try object(b, "\(at).backends[\(i)]")["connections"], "\(at).backends[\(i)].connections"))
    }
    let total = try optionalInt(o["connections"], "\(at).connections") ?? counts.reduce(0, +)
    var backends: [BackendResult] = []
    for (i, b) in backendValues.enumerated() {
      let bo = try object(b, "\(at).backends[\(i)]")
      let here = "\(at).backends[\(i)]"
      backends.append(
        BackendResult(
          address: try endpoint(bo["address"] ?? .null, "\(here).address"),
          pod: try optionalString(bo["pod"], "\(here).pod"),
          expectedShare: try optionalDouble(bo["expectedShare"], "\(here).expectedShare"),
          expectedShareExternal: try optionalDouble(
            bo["expectedShareExternal"], "\(here).expectedShareExternal"),
          connections: counts[i],
          failedConnections: try optionalInt(bo["failedConnections"], "\(here).failedConnections"),
          packets: try optionalInt(bo["packets"], "\(here).packets").map(UInt64.init),
          bytes: try optionalInt(bo["bytes"], "\(here).bytes").map(UInt64.init),
          pinnedClients: try optionalInt(bo["pinnedClients"], "\(here).pinnedClients"), total: total))
      backends[i].expectedShareForTraffic = try optionalDouble(
        bo["expectedShareForTraffic"], "\(here).expectedShareForTraffic")
    }
    var clients: [ClientResult] = []
    for (i, c) in try array(o["clients"], "\(at).clients").enumerated() {
      let here = "\(at).clients[\(i)]"
      let co = try object(c, here)
      let address = try ipAddress(co["address"] ?? .null, "\(here).address")
      var list: [(backend: Endpoint, connections: Int)] = []
      for (key, n) in try object(co["backends"] ?? .null, "\(here).backends") {
        guard let backend = Endpoint(key) else { throw fail("\(here).backends", "'\(key)' is not IP:port") }
        list.append((backend, try int(n, "\(here).backends.\(key)")))
      }
      list.sort { $0.backend < $1.backend }
      clients.append(
        ClientResult.reported(
          address: address, connections: try int(co["connections"], "\(here).connections"), backends: list,
          sticky: try optionalBool(co["sticky"], "\(here).sticky"),
          stickyPValue: try optionalDouble(co["stickyPValue"], "\(here).stickyPValue")))
    }
    var totals = ClientTotals()
    totals.clients = try optionalInt(o["clientCount"], "\(at).clientCount") ?? clients.count
    let omitted = try o["clientsOmitted"].map { v throws(ReportReadError) in
      try object(v, "\(at).clientsOmitted")
    }
    totals.connections =
      clients.reduce(0) { $0 + $1.connections }
      + (try optionalInt(omitted?["connections"], "\(at).clientsOmitted.connections") ?? 0)
    totals.stickyClients =
      try optionalInt(o["stickyClientCount"], "\(at).stickyClientCount")
      ?? clients.filter { $0.sticky == true }.count
    totals.stickyConnections =
      try optionalInt(o["stickyClientConnections"], "\(at).stickyClientConnections")
      ?? clients.filter { $0.sticky == true }.reduce(0) { $0 + $1.connections }
    let dropped = try o["clientsDropped"].map { v throws(ReportReadError) in
      try object(v, "\(at).clientsDropped")
    }

    let d = try object(o["distribution"] ?? .null, "\(at).distribution")
    let here = "\(at).distribution"
    var distribution = Distribution(
      total: total, backendCount: backends.count,
      maxMinRatio: try optionalDouble(d["maxMinRatio"], "\(here).maxMinRatio"),
      maxMeanRatio: try optionalDouble(d["maxMeanRatio"], "\(here).maxMeanRatio"),
      coefficientOfVariation: try optionalDouble(
        d["coefficientOfVariation"], "\(here).coefficientOfVariation") ?? 0,
      gini: try optionalDouble(d["gini"], "\(here).gini") ?? 0,
      chiSquare: try optionalDouble(d["chiSquare"], "\(here).chiSquare"),
      degreesOfFreedom: try optionalInt(d["degreesOfFreedom"], "\(here).degreesOfFreedom"),
      pValue: try optionalDouble(d["pValue"], "\(here).pValue"),
      effectSize: try optionalDouble(d["effectSize"], "\(here).effectSize"),
      imbalanced: try bool(d["imbalanced"], "\(here).imbalanced"),
      judged: try optionalBool(d["judged"], "\(here).judged") ?? false,
      verdict: try optionalString(d["verdict"], "\(here).verdict") ?? "",
      expectation: try optionalString(d["expectation"], "\(here).expectation") ?? "",
      metric: try string(d["metric"], "\(here).metric"))
    distribution.pValueMethod = try optionalString(d["pValueMethod"], "\(here).pValueMethod")
    distribution.simulations = try optionalInt(d["simulations"], "\(here).simulations")

    var frontendTraffic: FrontendTraffic? = nil
    if let t = o["frontendTraffic"], t != .null {
      let to = try object(t, "\(at).frontendTraffic")
      frontendTraffic = FrontendTraffic(
        clusterIP: try int(to["clusterIP"], "\(at).frontendTraffic.clusterIP"),
        external: try int(to["external"], "\(at).frontendTraffic.external"))
    }
    var service = ServiceResult.reported(
      name: try optionalString(o["name"], "\(at).name"), frontends: frontends, proto: proto,
      affinity: affinity,
      externalTrafficPolicy: try optionalString(o["externalTrafficPolicy"], "\(at).externalTrafficPolicy"),
      backends: backends, clients: clients, clientTotals: totals,
      droppedClientConnections: try optionalInt(dropped?["connections"], "\(at).clientsDropped.connections")
        ?? 0,
      distribution: distribution, connections: total,
      failedConnections: try optionalInt(o["failedConnections"], "\(at).failedConnections")
        ?? backends.reduce(0) { $0 + ($1.failedConnections ?? 0) },
      sourceTranslatedConnections: try optionalInt(
        o["sourceTranslatedConnections"], "\(at).sourceTranslatedConnections")
        ?? 0)
    service.frontendTraffic = frontendTraffic
    return service
  }

  func translatedSource(_ value: JSON, _ at: String) throws(ReportReadError) -> TranslatedSourceResult {
    let o = try object(value, at)
    let examples = try o["exampleSources"].map { v throws(ReportReadError) in
      try array(v, "\(at).exampleSources").map { e throws(ReportReadError) in
        try ipAddress(e, "\(at).exampleSources")
      }
    }
    return TranslatedSourceResult.reported(
      address: try ipAddress(o["address"] ?? .null, "\(at).address"),
      originalSourceCount: try int(o["originalSourceCount"], "\(at).originalSourceCount"),
      originalSourceCountIsLowerBound: try optionalBool(
        o["originalSourceCountIsLowerBound"], "\(at).originalSourceCountIsLowerBound") ?? false,
      connections: try int(o["connections"], "\(at).connections"),
      estimatedHosts: try optionalInt(o["estimatedHosts"], "\(at).estimatedHosts"),
      exampleSources: examples ?? [])
  }

  func finding(_ value: JSON, _ at: String) throws(ReportReadError) -> Finding {
    let o = try object(value, at)
    let severityText = try string(o["severity"], "\(at).severity")
    guard let severity = Severity(rawValue: severityText) else {
      throw fail("\(at).severity", "unknown severity '\(severityText)'")
    }
    return Finding(
      code: try string(o["code"], "\(at).code"), severity: severity,
      service: try optionalString(o["service"], "\(at).service"),
      summary: try string(o["summary"], "\(at).summary"),
      evidence: try array(o["evidence"], "\(at).evidence").map { v throws(ReportReadError) in
        try string(v, "\(at).evidence")
      },
      remediation: try optionalString(o["remediation"], "\(at).remediation"))
  }

  static let protocols: [String: TransportProtocol] = Dictionary(
    uniqueKeysWithValues: [TransportProtocol.tcp, .udp, .sctp, .dccp, .udplite, .icmp, .icmpv6, .gre].map {
      ($0.description, $0)
    })

  // MARK: - Typed access

  func fail(_ field: String, _ problem: String) -> ReportReadError {
    ReportReadError(path: path, field: field, problem: problem)
  }

  func object(_ value: JSON, _ at: String) throws(ReportReadError) -> [String: JSON] {
    guard case .object(let o) = value else { throw fail(at, "expected an object") }
    return o
  }

  func array(_ value: JSON?, _ at: String) throws(ReportReadError) -> [JSON] {
    guard case .array(let a)? = value else { throw fail(at, value == nil ? "missing" : "expected an array") }
    return a
  }

  func string(_ value: JSON?, _ at: String) throws(ReportReadError) -> String {
    guard case .string(let s)? = value else { throw fail(at, value == nil ? "missing" : "expected a string") }
    return s
  }

  func optionalString(_ value: JSON?, _ at: String) throws(ReportReadError) -> String? {
    switch value {
    case nil, .null?: return nil
    case .string(let s)?: return s
    default: throw fail(at, "expected a string or null")
    }
  }

  func int(_ value: JSON?, _ at: String) throws(ReportReadError) -> Int {
    guard let n = try optionalInt(value, at) else {
      throw fail(at, value == nil ? "missing" : "expected a count")
    }
    return n
  }

  /// A non-negative integer, or nil for null or absent.
  func optionalInt(_ value: JSON?, _ at: String) throws(ReportReadError) -> Int? {
    switch value {
    case nil, .null?: return nil
    case .int(let n)? where n >= 0 && n <= Int64(Int32.max) * 1024: return Int(n)
    default: throw fail(at, "expected a count (a non-negative integer) or null")
    }
  }

  func optionalDouble(_ value: JSON?, _ at: String) throws(ReportReadError) -> Double? {
    switch value {
    case nil, .null?: return nil
    case .int(let n)?: return Double(n)
    case .double(let d)?: return d
    default: throw fail(at, "expected a number or null")
    }
  }

  func bool(_ value: JSON?, _ at: String) throws(ReportReadError) -> Bool {
    guard case .bool(let b)? = value else {
      throw fail(at, value == nil ? "missing" : "expected true or false")
    }
    return b
  }

  func optionalBool(_ value: JSON?, _ at: String) throws(ReportReadError) -> Bool? {
    switch value {
    case nil, .null?: return nil
    case .bool(let b)?: return b
    default: throw fail(at, "expected true, false or null")
    }
  }

  func endpoint(_ value: JSON, _ at: String) throws(ReportReadError) -> Endpoint {
    guard case .string(let s) = value, let e = Endpoint(s) else {
      throw fail(at, "expected IP:port or [IPv6]:port")
    }
    return e
  }

  func ipAddress(_ value: JSON, _ at: String) throws(ReportReadError) -> IPAddress {
    guard case .string(let s) = value, let a = IPAddress(s) else { throw fail(at, "expected an IP address") }
    return a
  }
}
