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
  /// service's position in `result.services`) as the services are made on all processors:
  /// reports built on this one (incident, cluster) add their parts there.
  public static func document(
    _ result: AnalysisResult, tool: ToolInfo, maxClients: Int = defaultMaxClients,
    decorate: (@Sendable (Int, inout [String: JSON]) -> Void)? = nil
  ) -> JSON {
    let services = inParallel(Array(result.services.indices)) { s in
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

  /// Each element's JSON, made on all processors: a report of a large table lists tens of
  /// thousands of clients, which `service` renders to bytes (`clientsRendered`) on the way.
  static func inParallel<T: Sendable>(_ items: [T], _ make: @Sendable (T) -> JSON) -> [JSON] {
    guard items.count > 1 else { return items.map(make) }
    let slots = UnsafeMutableBufferPointer<JSON>.allocate(capacity: items.count)
    slots.initialize(repeating: .null)
    defer {
      slots.deinitialize()
      slots.deallocate()
    }
    nonisolated(unsafe) let shared = slots
    DispatchQueue.concurrentPerform(iterations: items.count) { i in
      shared[i] = make(items[i])
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
      "clients": clientsRendered(listed),
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
  /// `services` array of the top-level object): array items eight spaces deep, in an array that
  /// is a member six deep.
  static let clientIndent = 8

  /// A service's `clients` array rendered straight to bytes for where it stands (a member
  /// `clientIndent - 2` spaces deep), byte for byte what the generic writer makes of
  /// `.array(clients.map(client))` (`ClientRenderingTests` compares the two). A report of a
  /// large table lists tens of thousands of clients; building each as a tree of dictionaries,
  /// `String`s and boxed values and sorting its keys cost more than reading the table.
  static func clientsRendered(_ clients: ArraySlice<ClientResult>) -> JSON {
    guard !clients.isEmpty else { return .rendered(Array("[]".utf8)) }
    var mostBackends = 0
    var backends = 0
    for c in clients {
      mostBackends = max(mostBackends, c.backends.count)
      backends += c.backends.count
    }
    var keys = BackendKeys(capacity: mostBackends)
    // Room for the longest text each client can have (an IPv6 address, 20-digit counts, the
    // longest double, 90 bytes per backend), so `text` never grows by copying itself.
    var text: [UInt8] = []
    text.reserveCapacity(16 + clients.count * 300 + backends * 90)
    var out = JSONByteWriter(capacity: 1 << 12)
    // The literals spell out the indentation: clients 8 spaces deep, their members 10, the
    // members of `backends` 12, the closing bracket of the array 6.
    var first = true
    for c in clients {
      if first {
        out.write("[\n        {\n          \"address\": \"")
        first = false
      } else {
        out.write(",\n        {\n          \"address\": \"")
      }
      out.write(c.address)
      out.write("\",\n          \"backends\": ")
      keys.write(c.backends, into: &out)
      out.write(",\n          \"connections\": ")
      out.write(Int64(clamping: c.connections))
      switch c.sticky {
      case true?: out.write(",\n          \"sticky\": true,\n          \"stickyPValue\": ")
      case false?: out.write(",\n          \"sticky\": false,\n          \"stickyPValue\": ")
      case nil: out.write(",\n          \"sticky\": null,\n          \"stickyPValue\": ")
      }
      if let p = c.stickyPValue { out.write(p) } else { out.write("null") }
      out.write("\n        }")
      out.drain(into: &text)
    }
    out.write("\n      ]")
    out.drain(into: &text)
    return .rendered(text)
  }

  /// The `backends` object of one client at a time: keys are the endpoints' text in the
  /// generic writer's order (`JSON.keyPrecedes`; endpoint text is ASCII, so byte order), one
  /// member per key with the last value given for it, as a `[String: JSON]` built in order
  /// keeps. Each key is written into a zero-filled slot of six words, so comparing two keys is
  /// comparing up to six big-endian words (a zero pads the shorter key, which sorts first).
  struct BackendKeys: ~Copyable {
    static let words = 6
    /// `words` words per backend of the client being written.
    private let slots: UnsafeMutablePointer<UInt64>
    private let lengths: UnsafeMutablePointer<Int>
    private let order: UnsafeMutablePointer<Int>

    init(capacity: Int) {
      let n = max(capacity, 1)
      slots = .allocate(capacity: n * BackendKeys.words)
      lengths = .allocate(capacity: n)
      order = .allocate(capacity: n)
    }

    deinit {
      slots.deallocate()
      lengths.deallocate()
      order.deallocate()
    }

    /// `backends` as the generic writer renders `.object` of them, members 12 spaces deep.
    /// There is room for them: `capacity` is at least their count.
    mutating func write(_ backends: [(backend: Endpoint, connections: Int)], into out: inout JSONByteWriter) {
      let n = backends.count
      guard n > 0 else { return out.write("{}") }
      if n == 1 {  // most clients: nothing to sort
        out.write("{\n            \"")
        out.write(backends[0].backend)
        out.write("\": ")
        out.write(Int64(clamping: backends[0].connections))
        return out.write("\n          }")
      }
      let slots = self.slots
      let order = self.order
      for i in 0..<n {
        let slot = slots + i * BackendKeys.words
        slot.initialize(repeating: 0, count: BackendKeys.words)
        lengths[i] = UnsafeMutableRawPointer(slot).withMemoryRebound(
          to: UInt8.self, capacity: BackendKeys.words * 8
        ) { JSONByteWriter.writeEndpoint(backends[i].backend, to: $0) }
        order[i] = i
      }
      // Key order, then given order: a run of equal keys ends with the value that counts.
      let precedes = { (a: Int, b: Int) -> Bool in
        let c = BackendKeys.compare(slots + a * BackendKeys.words, slots + b * BackendKeys.words)
        return c != 0 ? c < 0 : a < b
      }
      if n <= 16 {
        for i in 1..<n {
          let moving = order[i]
          var j = i
          while j > 0 && precedes(moving, order[j - 1]) {
            order[j] = order[j - 1]
            j -= 1
          }
          order[j] = moving
        }
      } else {
        var all = UnsafeMutableBufferPointer(start: order, count: n)
        all.sort(by: precedes)
      }
      var first = true
      for k in 0..<n {
        let i = order[k]
        let slot = slots + i * BackendKeys.words
        if k + 1 < n && BackendKeys.compare(slot, slots + order[k + 1] * BackendKeys.words) == 0 { continue }
        out.write(first ? "{\n            \"" : ",\n            \"")
        first = false
        UnsafeRawPointer(slot).withMemoryRebound(to: UInt8.self, capacity: BackendKeys.words * 8) {
          out.write(UnsafeBufferPointer(start: $0, count: lengths[i]))
        }
        out.write("\": ")
        out.write(Int64(clamping: backends[i].connections))
      }
      out.write("\n          }")
    }

    /// Byte order of two zero-padded keys: negative, zero or positive.
    @inline(__always)
    static func compare(_ a: UnsafeMutablePointer<UInt64>, _ b: UnsafeMutablePointer<UInt64>) -> Int {
      for w in 0..<words where a[w] != b[w] {
        return UInt64(bigEndian: a[w]) < UInt64(bigEndian: b[w]) ? -1 : 1
      }
      return 0
    }
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
