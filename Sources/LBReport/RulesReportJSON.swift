import LBAnalysis
import LBCore

/// The JSON report of `lbscope rules` (report contract, schema version 1): services as the
/// rules program them, with lbscope's own additions (`masquerade`, `noEndpoints`, rule
/// `probability`, `pinnedClientList`, `trace`). Renders; decides nothing.
public enum RulesReportJSON {
  public static func render(_ result: RulesResult, tool: ToolInfo) -> String {
    var out = ""
    render(result, tool: tool) { out += $0 }
    return out
  }

  /// Renders piece by piece, one service at a time, so a report of 10,000 services never
  /// exists as one tree in memory. The text is the same as `document(…).rendered()`.
  public static func render(_ result: RulesResult, tool: ToolInfo, emit: (String) -> Void) {
    let skeleton = document(result, tool: tool, services: false).rendered()
    let marker = "\n  \"services\": []"
    let text = Array(skeleton.utf8)
    let needle = Array(marker.utf8)
    guard
      let start = (0...(text.count - needle.count)).first(where: {
        text[$0..<($0 + needle.count)].elementsEqual(needle)
      })
    else {
      emit(skeleton)
      return
    }
    emit(String(decoding: text[..<start], as: UTF8.self) + "\n  \"services\": ")
    if result.services.isEmpty {
      emit("[]")
    } else {
      emit("[\n")
      for i in result.services.indices {
        var piece = Array("    ".utf8)
        service(result.services[i], distribution: result.distributions[i]).write(into: &piece, indent: 4)
        piece += Array((i + 1 < result.services.count ? ",\n" : "\n").utf8)
        emit(String(decoding: piece, as: UTF8.self))
      }
      emit("  ]")
    }
    emit(String(decoding: text[(start + needle.count)...], as: UTF8.self))
  }

  public static func document(_ result: RulesResult, tool: ToolInfo, services withServices: Bool = true)
    -> JSON
  {
    var root: [String: JSON] = [
      "schemaVersion": .int(Int64(JSONReport.schemaVersion)),
      "tool": .object(["name": .string(tool.name), "version": .string(tool.version)]),
      "inputs": .array(result.inputs.map(JSONReport.input)),
      "services": .array(
        withServices
          ? result.services.indices.map {
            service(result.services[$0], distribution: result.distributions[$0])
          } : []),
      "translatedSources": .array([]),
      "findings": .array(result.findings.map(JSONReport.finding)),
      "unlinkedPinnedClients": .array(result.unlinkedPins.map(pin)),
      "totals": .object([
        "services": .number(result.services.count),
        "backends": .number(result.services.reduce(0) { $0 + $1.backends.count }),
        "pinnedClients": .number(result.services.reduce(0) { $0 + $1.pinnedClients.count }),
        "servicesFilteredOut": .number(result.servicesFilteredOut),
      ]),
      "clockSource": .optional(result.clockSource),
    ]
    if let trace = result.trace { root["trace"] = self.trace(trace) }
    return .object(root)
  }

  static func service(_ s: ServiceRule, distribution: Distribution?) -> JSON {
    var pinned: [Endpoint: Int] = [:]
    for pin in s.pinnedClients { if let b = pin.backend { pinned[b, default: 0] += 1 } }
    let hasPins = s.affinity != nil || !s.pinnedClients.isEmpty
    let total = s.backends.reduce(UInt64(0)) { $0 &+ ($1.observedConnections ?? 0) }
    let counted = s.backends.contains { $0.observedConnections != nil }
    let backends = s.backends.sorted { $0.endpoint < $1.endpoint }.map { b -> JSON in
      .object([
        "address": .string(b.endpoint.description),
        "pod": .null,
        "expectedShare": .optional(b.expectedShare),
        "expectedShareExternal": .optional(b.expectedShareExternal),
        "connections": .optional(b.observedConnections),
        "observedShare": counted && total > 0
          ? .double(Double(b.observedConnections ?? 0) / Double(total)) : .null,
        "failedConnections": .null,
        "packets": .null,
        "bytes": .null,
        "pinnedClients": hasPins ? .number(pinned[b.endpoint] ?? 0) : .null,
        "probability": .optional(b.probability),
        "weight": .optional(b.weight),
        "isLocal": .optional(b.isLocal),
        "chain": .optional(b.chain),
        "affinityList": .optional(b.affinityList),
        "line": .number(b.location.line),
      ])
    }
    var object: [String: JSON] = [
      "name": .optional(s.name),
      "frontends": .array(s.frontends.map { .string($0.description) }),
      "frontendKinds": .array(s.frontends.map { .string($0.kind.rawValue) }),
      "protocol": .string(s.proto.description),
      "affinity": s.affinity.map {
        .object([
          "mode": .string($0.mode), "timeoutSeconds": .optional($0.timeoutSeconds),
          "source": .string($0.source.rawValue),
        ])
      } ?? .null,
      "externalTrafficPolicy": .optional(s.externalTrafficPolicy?.rawValue),
      "masquerade": .array(s.masquerade.sorted().map { .string($0.rawValue) }),
      "noEndpoints": .optional(s.noEndpoints?.rawValue),
      "noLocalEndpoints": .optional(s.noLocalEndpoints?.rawValue),
      "scheduler": .optional(s.scheduler),
      "backends": .array(backends),
      "clients": .array([]),
      "pinnedClientList": .array(s.pinnedClients.map(pin)),
      "observedCounterSource": .optional(s.observedCounterSource),
      "source": .string(s.source.rawValue),
      "chain": .optional(s.chain),
      "input": .number(s.location.input),
      "line": .number(s.location.line),
    ]
    object["distribution"] = distribution.map(JSONReport.distribution) ?? .null
    return .object(object)
  }

  static func pin(_ p: PinnedClient) -> JSON {
    .object([
      "client": .string(p.client.description),
      "backend": .optional(p.backend?.description),
      "lastSeenAgeSeconds": .optional(p.lastSeenAgeSeconds),
      "expiresInSeconds": .optional(p.expiresInSeconds),
      "lastSeenJiffies": .optional(p.lastSeenJiffies),
      "hits": .optional(p.hits),
      "source": .string(p.source.rawValue),
      "list": .optional(p.list),
      "line": .number(p.location.line),
    ])
  }

  static func trace(_ t: PacketTrace) -> JSON {
    .object([
      "source": .string(t.source.description),
      "destination": .string(t.destination.description),
      "protocol": .string(t.proto.description),
      "steps": .array(
        t.steps.map {
          .object([
            "depth": .number($0.depth), "table": .string($0.table), "chain": .string($0.chain),
            "line": .optional($0.line), "text": .string($0.text), "chance": .double($0.chance),
          ])
        }),
      "outcomes": .array(
        t.outcomes.map {
          .object([
            "destination": .optional($0.destination?.description), "verdict": .string($0.verdict),
            "chance": .double($0.chance), "masqueraded": .bool($0.masqueraded), "chain": .string($0.chain),
          ])
        }),
      "assumptions": .array(t.assumptions.map(JSON.string)),
    ])
  }
}
