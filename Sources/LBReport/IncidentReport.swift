import LBAnalysis
import LBCore

/// The report of `lbscope report`: the contract's JSON with, per service, every source's counts
/// (`sources`), which one is trusted and why, and the backends' nodes; and the Markdown report
/// with a sources table and pinned clients under each service. Renders; decides nothing.
public enum IncidentReport {
  public static func document(_ incident: IncidentResult, tool: ToolInfo, maxClients: Int) -> JSON {
    JSONReport.document(incident.analysis, tool: tool, maxClients: maxClients) { s, object in
      let service = incident.analysis.services[s]
      let info = incident.serviceSources[s]
      object["sources"] = .array(
        info.sources.map { source in
          var connections: [String: JSON] = [:]
          for entry in source.connections {
            connections[entry.backend.description] = .number(entry.connections)
          }
          return .object([
            "source": .string(source.source),
            "paths": .array(source.paths.map(JSON.string)),
            "connections": .object(connections),
            "total": .number(source.total),
            "trusted": .bool(source.source == info.trusted),
          ])
        })
      object["trustedSource"] = .optional(info.trusted)
      object["trustReason"] = .string(info.trustReason)
      object["ruleFrontends"] = .array(info.ruleFrontends.map(JSON.string))
      object["equalSplitDistribution"] = info.equalSplit.map(JSONReport.distribution) ?? .null
      object["pinned"] = .array(
        info.pinnedClients.map {
          .object([
            "client": .string($0.client.description),
            "backend": .optional($0.backend?.description),
            "lastSeenAgeSeconds": .optional($0.lastSeenAgeSeconds),
            "hits": .optional($0.hits),
            "source": .string($0.source.rawValue),
          ])
        })
      if case .array(let backends)? = object["backends"] {
        object["backends"] = .array(
          zip(backends, service.backends).map { json, backend in
            guard case .object(var b) = json else { return json }
            b["node"] = .optional(info.backendNodes[backend.address])
            return .object(b)
          })
      }
    }
  }

  public static func markdown(_ incident: IncidentResult, tool: ToolInfo, topClients: Int) -> String {
    let report = MarkdownReport(topClients: topClients)
    return report.render(
      incident.analysis, tool: tool, title: "lbscope incident report", beforeServices: ""
    ) { s in
      let info = incident.serviceSources[s]
      let service = incident.analysis.services[s]
      var out = ""
      if !info.sources.isEmpty {
        out += "Sources (trusted: \(info.trusted ?? "none"); \(report.inline(info.trustReason))):\n\n"
        out += "| Source | Total |" + service.backends.map { " `\($0.address)` |" }.joined() + "\n"
        out += "|---|---:|" + String(repeating: "---:|", count: service.backends.count) + "\n"
        for source in info.sources {
          let marker = source.source == info.trusted ? " (trusted)" : ""
          out += "| \(report.cell(source.source))\(marker) | \(source.total) |"
          for b in service.backends {
            let n = source.connections.first { $0.backend == b.address }?.connections
            out += " \(n.map(String.init) ?? "–") |"
          }
          out += "\n"
        }
        out += "\n"
      }
      if let equal = info.equalSplit {
        out += "Against an equal split instead of the rules' shares: \(report.inline(equal.verdict)).\n\n"
      }
      if !info.pinnedClients.isEmpty {
        out += "Pinned by affinity state right now:\n\n| Client | Backend | Last seen |\n|---|---|---:|\n"
        for pin in info.pinnedClients {
          let age = pin.lastSeenAgeSeconds.map { "\(NumberText.decimal($0, places: 1)) s ago" } ?? "–"
          out += "| `\(pin.client)` | \(pin.backend.map { "`\($0)`" } ?? "–") | \(age) |\n"
        }
        out += "\n"
      }
      if !info.backendNodes.isEmpty {
        out +=
          "Nodes: "
          + info.backendNodes.sorted { $0.key < $1.key }.map { "`\($0.key)` on \(report.cell($0.value))" }
          .joined(
            separator: ", ") + ".\n\n"
      }
      return out
    }
  }
}
