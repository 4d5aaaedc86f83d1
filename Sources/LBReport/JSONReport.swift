import Dispatch
import LBAnalysis
import LBCore

/// The JSON report of `../shared/REPORT-CONTRACT.md` (schema version 1), with lbscope's own
/// additions. Renders an analysis; decides nothing.
public enum JSONReport {
  public static let schemaVersion = 1

  /// Clients listed per service by default; the rest are summed in `clientsOmitted`.
  public static let defaultMaxClients = 1000

  /// `maxClients` caps the client list of each service (busiest first); 0 lists them all.
  public static func render(
    _ result: AnalysisResult, tool: ToolInfo, maxClients: Int = defaultMaxClients
  ) -> String {
    document(result, tool: tool, maxClients: maxClients).rendered()
  }

  /// The document. `decorate`, when given, adds members to each service's object (by the
  /// service's position in `result.services`) before the services are rendered on all
  /// processors: reports built on this one (incident, cluster) add their parts there, as a
  /// rendered service can no longer be changed.
  public static func document(
    _ result: AnalysisResult, tool: ToolInfo, maxClients: Int = defaultMaxClients,
    decorate: (@Sendable (Int, inout [String: JSON]) -> Void)? = nil
  ) -> JSON {
    let services = renderedInParallel(Array(result.services.indices)) { s in
      let json = service(result.services[s], maxClients: maxClients)
      guard let decorate, case .object(var members) = json else { return json }
      decorate(s, &members)
      return .object(members)
    }
    return .object([
      "schemaVersion": .int(Int64(schemaVersion)),
      "tool": .object(["name": .string(tool.name), "version": .string(tool.version)]),
      "inputs": .array(result.inputs.map(input)),
      "services": .array(services),
      "translatedSources": .array(result.translatedSources.map(translatedSource)),
      "findings": .array(result.findings.map(finding)),
      "totals": .object([
        "connections": .number(result.connections),
        "connectionsWithoutDNAT": .number(result.connectionsWithoutDNAT),
        "servicesFilteredOut": .number(result.servicesFilteredOut),
      ]),
    ])
  }

  /// Each element's JSON rendered as an array item (four spaces deep) on all processors: a
  /// report of a large table lists tens of thousands of clients.
  static func renderedInParallel<T: Sendable>(_ items: [T], _ make: @Sendable (T) -> JSON) -> [JSON] {
    guard items.count > 1 else { return items.map(make) }
    let slots = UnsafeMutableBufferPointer<JSON>.allocate(capacity: items.count)
    slots.initialize(repeating: .null)
    defer {
      slots.deinitialize()
      slots.deallocate()
    }
    nonisolated(unsafe) let shared = slots
    DispatchQueue.concurrentPerform(iterations: items.count) { i in
      shared[i] = .rendered(make(items[i]).renderedBytes(indent: 4))
    }
    return Array(slots)
  }

  static func input(_ s: InputSummary) -> JSON {
    .object([
      "path": .string(s.path),
      "kind": .string(s.kind.rawValue),
      "records": .number(s.records),
      "issues": .object([
        "truncated": .number(s.truncated), "malformed": .number(s.malformed),
        "unsupported": .number(s.unsupported),
      ]),
      "partial": .bool(s.partial),
      "notes": .array(s.notes.map(JSON.string)),
      "issueExamples": .array(
        s.examples.map {
          .object([
            "kind": .string($0.kind.rawValue), "line": .number($0.line), "message": .string($0.message),
          ])
        }),
    ])
  }

  static func service(_ s: ServiceResult, maxClients: Int) -> JSON {
    let listed = maxClients > 0 ? s.clients.prefix(maxClients) : s.clients[...]
    let listedConnections = listed.reduce(0) { $0 + $1.connections }
    let totals = s.clientTotals
    var fields: [String: JSON] = [
      "name": .optional(s.name),
      "frontends": .array(s.frontends.map { .string($0.description) }),
      "protocol": .string(s.proto.description),
      "affinity": s.affinity.map {
        .object([
          "mode": .string($0.mode), "timeoutSeconds": .optional($0.timeoutSeconds),
          "source": .string($0.source),
        ])
      } ?? .null,
      "externalTrafficPolicy": .optional(s.externalTrafficPolicy),
      "connections": .number(s.connections),
      "failedConnections": .number(s.failedConnections),
      "sourceTranslatedConnections": .number(s.sourceTranslatedConnections),
      "backends": .array(s.backends.map(backend)),
      "clients": .array(listed.map(clientRendered)),
      "clientCount": .number(totals.clients),
      "stickyClientCount": .number(totals.stickyClients),
      "stickyClientConnections": .number(totals.stickyConnections),
      "clientsOmitted": .object([
        "clients": .number(totals.clients - listed.count),
        "connections": .number(totals.connections - listedConnections),
      ]),
      "clientsDropped": .object([
        "connections": .number(s.droppedClientConnections)
      ]),
      "distribution": distribution(s.distribution),
    ]
    fields["frontendTraffic"] =
      s.frontendTraffic.map {
        .object(["clusterIP": .number($0.clusterIP), "external": .number($0.external)])
      } ?? .null
    // Only packet traces with plaintext HTTP show cookies; absent otherwise.
    if !s.cookieAffinity.isEmpty { fields["cookieAffinity"] = .array(s.cookieAffinity.map(cookieAffinity)) }
    return .object(fields)
  }

  static func backend(_ b: BackendResult) -> JSON {
    .object([
      "address": .string(b.address.description),
      "pod": .optional(b.pod),
      "expectedShare": .optional(b.expectedShare),
      "expectedShareExternal": .optional(b.expectedShareExternal),
      "expectedShareForTraffic": .optional(b.expectedShareForTraffic),
      "connections": .number(b.connections),
      "observedShare": .optional(b.observedShare),
      "observedShareInterval95": b.shareInterval.map { .array([.double($0.lower), .double($0.upper)]) }
        ?? .null,
      "failedConnections": .optional(b.failedConnections),
      "packets": .optional(b.packets),
      "bytes": .optional(b.bytes),
      "pinnedClients": .optional(b.pinnedClients),
      "handshakeRttMs": b.handshakeRTT.map {
        .object([
          "p50": .double($0.p50), "p90": .double($0.p90), "p99": .double($0.p99),
          "samples": .number($0.samples), "connections": .number($0.total),
        ])
      } ?? .null,
      "httpRequests": .optional(b.httpRequests),
    ])
  }

  /// Where a service's client objects stand in every document that lists services (the
  /// `services` array of the top-level object): array items eight spaces deep.
  static let clientIndent = 8

  /// `client(c)` rendered straight to bytes at `clientIndent`, byte for byte what the generic
  /// writer makes of it (`JSONReportTests` compares the two). A report of a large table lists
  /// tens of thousands of clients; building each as a tree of dictionaries and boxed values
  /// and sorting its keys cost more than reading the table.
  static func clientRendered(_ c: ClientResult) -> JSON {
    let inner = clientIndent + 2
    var out: [UInt8] = []
    out.reserveCapacity(160 + 40 * c.backends.count)
    JSON.writeLiteral("{\n", into: &out)
    JSON.writeSpaces(inner, into: &out)
    JSON.writeLiteral("\"address\": ", into: &out)
    JSON.writeString(c.address.description, into: &out)
    JSON.writeLiteral(",\n", into: &out)
    JSON.writeSpaces(inner, into: &out)
    // The generic writer's object: one value per key (the last one), keys in its order.
    var backends: [(key: String, connections: Int)] = []
    for entry in c.backends {
      let key = entry.backend.description
      if let same = backends.firstIndex(where: { $0.key == key }) {
        backends[same].connections = entry.connections
      } else {
        backends.append((key, entry.connections))
      }
    }
    backends.sort { JSON.keyPrecedes($0.key, $1.key) }
    if backends.isEmpty {
      JSON.writeLiteral("\"backends\": {},\n", into: &out)
    } else {
      JSON.writeLiteral("\"backends\": {\n", into: &out)
      for (i, entry) in backends.enumerated() {
        JSON.writeSpaces(inner + 2, into: &out)
        JSON.writeString(entry.key, into: &out)
        JSON.writeLiteral(": ", into: &out)
        JSON.writeInteger(Int64(clamping: entry.connections), into: &out)
        if i + 1 < backends.count { out.append(0x2C) }
        out.append(0x0A)
      }
      JSON.writeSpaces(inner, into: &out)
      JSON.writeLiteral("},\n", into: &out)
    }
    JSON.writeSpaces(inner, into: &out)
    JSON.writeLiteral("\"connections\": ", into: &out)
    JSON.writeInteger(Int64(clamping: c.connections), into: &out)
    JSON.writeLiteral(",\n", into: &out)
    JSON.writeSpaces(inner, into: &out)
    JSON.writeLiteral("\"sticky\": ", into: &out)
    switch c.sticky {
    case true?: JSON.writeLiteral("true", into: &out)
    case false?: JSON.writeLiteral("false", into: &out)
    case nil: JSON.writeLiteral("null", into: &out)
    }
    JSON.writeLiteral(",\n", into: &out)
    JSON.writeSpaces(inner, into: &out)
    JSON.writeLiteral("\"stickyPValue\": ", into: &out)
    out.append(contentsOf: (c.stickyPValue.map(JSON.formatDouble) ?? "null").utf8)
    out.append(0x0A)
    JSON.writeSpaces(clientIndent, into: &out)
    out.append(0x7D)
    return .rendered(out)
  }

  static func client(_ c: ClientResult) -> JSON {
    var backends: [String: JSON] = [:]
    for entry in c.backends { backends[entry.backend.description] = .number(entry.connections) }
    return .object([
      "address": .string(c.address.description),
      "connections": .number(c.connections),
      "backends": .object(backends),
      "sticky": .optional(c.sticky),
      "stickyPValue": .optional(c.stickyPValue),
    ])
  }

  static func distribution(_ d: Distribution) -> JSON {
    var fields: [String: JSON] = [
      "metric": .string(d.metric),
      "total": .number(d.total),
      "maxMinRatio": .optional(d.maxMinRatio),
      "maxMeanRatio": .optional(d.maxMeanRatio),
      "coefficientOfVariation": .double(d.coefficientOfVariation),
      "gini": .double(d.gini),
      "chiSquare": .optional(d.chiSquare),
      "degreesOfFreedom": .optional(d.degreesOfFreedom),
      "pValue": .optional(d.pValue),
      "effectSize": .optional(d.effectSize),
      "imbalanced": .bool(d.imbalanced),
      "judged": .bool(d.judged),
      "verdict": .string(d.verdict),
      "expectation": .string(d.expectation),
      "pValueMethod": .optional(d.pValueMethod),
    ]
    if let n = d.simulations { fields["simulations"] = .number(n) }
    return .object(fields)
  }

  static func translatedSource(_ t: TranslatedSourceResult) -> JSON {
    var fields: [String: JSON] = [
      "address": .string(t.address.description),
      "originalSourceCount": .number(t.originalSourceCount),
      "originalSourceCountIsLowerBound": .bool(t.originalSourceCountIsLowerBound),
      "connections": .number(t.connections),
      "estimatedHosts": .optional(t.estimatedHosts),
      "exampleSources": .array(t.exampleSources.map { .string($0.description) }),
    ]
    // Only packet traces measure it; absent rather than empty keeps other reports unchanged.
    if !t.evidence.isEmpty { fields["evidence"] = .array(t.evidence.map(JSON.string)) }
    return .object(fields)
  }

  /// `cookieAffinity` of a service (present only when an affinity cookie was found).
  static func cookieAffinity(_ c: CookieAffinityObservation) -> JSON {
    .object([
      "name": .string(c.name),
      "values": .number(c.values),
      "connections": .number(c.connections),
      "consistency": .double(c.consistency),
      "example": .string(c.example),
    ])
  }

  static func finding(_ f: Finding) -> JSON {
    .object([
      "code": .string(f.code),
      "severity": .string(f.severity.rawValue),
      "service": .optional(f.service),
      "summary": .string(f.summary),
      "evidence": .array(f.evidence.map(JSON.string)),
      "remediation": .optional(f.remediation),
    ])
  }
}

/// The tool's name and version as reports print them.
public struct ToolInfo: Sendable {
  public var name: String
  public var version: String
  public init(name: String = "lbscope", version: String) {
    self.name = name
    self.version = version
  }
}
