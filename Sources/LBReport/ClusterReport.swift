import LBAnalysis
import LBCore

/// The cluster-wide report of `lbscope merge`: the JSON and Markdown of its merged analysis, plus
/// per-node parts (`nodes` at the top, in each service, and in each backend).
public enum ClusterReport {
  public static func document(
    _ cluster: ClusterResult, tool: ToolInfo, maxClients: Int = JSONReport.defaultMaxClients
  ) -> JSON {
    let serviceNodes = cluster.serviceNodes
    let document = JSONReport.document(cluster.result, tool: tool, maxClients: maxClients) { s, members in
      guard s < serviceNodes.count, case .array(let backends)? = members["backends"] else { return }
      let shares = serviceNodes[s]
      members["nodes"] = .array(
        shares.map { share in
          var counts: [String: JSON] = [:]
          for (backend, n) in share.backends { counts[backend.description] = .number(n) }
          return .object([
            "node": .string(share.node), "connections": .number(share.connections),
            "share": .optional(share.share),
            "failedConnections": .number(share.failedConnections),
            "sourceTranslatedConnections": .number(share.sourceTranslatedConnections),
            "imbalanced": .bool(share.imbalanced), "backends": .object(counts),
          ])
        })
      members["backends"] = .array(
        backends.map { backend in
          guard case .object(var b) = backend, case .string(let address)? = b["address"] else {
            return backend
          }
          var perNode: [String: JSON] = [:]
          for share in shares {
            if let n = share.backends.first(where: { $0.backend.description == address })?.connections {
              perNode[share.node] = .number(n)
            }
          }
          b["nodes"] = .object(perNode)
          return .object(b)
        })
    }
    guard case .object(var root) = document else { return document }
    root["nodes"] = .array(
      cluster.nodes.map {
        .object([
          "node": .string($0.node), "path": .string($0.path), "connections": .number($0.connections),
          "share": .optional($0.share), "services": .number($0.services),
        ])
      })
    return .object(root)
  }

  public static func markdown(_ cluster: ClusterResult, tool: ToolInfo, topClients: Int = 20) -> String {
    let report = MarkdownReport(topClients: topClients)
    var nodes = "## Nodes\n\n\(cluster.nodes.count) node report(s) merged.\n\n"
    nodes += "| Node | Report | Service connections | Share | Services |\n|---|---|---:|---:|---:|\n"
    for n in cluster.nodes {
      nodes +=
        "| \(report.cell(n.node)) | `\(report.cell(n.path))` | \(n.connections) | \(n.share.map(NumberText.percent) ?? "–") | \(n.services) |\n"
    }
    nodes += "\n"
    return report.render(cluster.result, tool: tool, title: "lbscope cluster report", beforeServices: nodes) {
      i in
      guard i < cluster.serviceNodes.count else { return "" }
      var out = "Per node:\n\n| Node | Connections | Share | | Failed | Source-translated | Backends |\n"
      out += "|---|---:|---:|---|---:|---:|---|\n"
      for share in cluster.serviceNodes[i] {
        let backends = share.backends.map { "`\($0.backend)` ×\($0.connections)" }.joined(separator: ", ")
        out +=
          "| \(report.cell(share.node)) | \(share.connections) | \(share.share.map(NumberText.percent) ?? "–") | \(report.bar(share.share ?? 0)) | \(share.failedConnections) | \(share.sourceTranslatedConnections) | \(backends) |\n"
      }
      return out + "\n"
    }
  }
}
