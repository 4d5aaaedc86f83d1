import LBAnalysis
import LBCore

/// The Markdown report for an incident page: a short summary, findings with their fixes, then
/// per service a backend table with shares and bars, the busiest clients, translated sources,
/// and an appendix of inputs. Renders an analysis; decides nothing.
public struct MarkdownReport {
  public var topClients = 20
  public var barWidth = 20

  public init(topClients: Int = 20) { self.topClients = topClients }

  public func render(_ result: AnalysisResult, tool: ToolInfo) -> String {
    render(result, tool: tool, title: "lbscope report", beforeServices: "") { _ in "" }
  }

  /// The report with `beforeServices` placed ahead of the services and `serviceExtra(i)` at the
  /// end of service i's section (used by the cluster report for its per-node parts).
  func render(
    _ result: AnalysisResult, tool: ToolInfo, title: String, beforeServices: String,
    serviceExtra: (Int) -> String
  ) -> String {
    var out = "# \(title)\n\n"
    out += summary(result)
    out += "\n"
    out += findings(result)
    out += beforeServices
    out += servicesSection(result, extra: serviceExtra)
    out += translatedSection(result)
    out += inputsSection(result, tool: tool)
    return out
  }

  func summary(_ r: AnalysisResult) -> String {
    let counts = Dictionary(grouping: r.findings, by: \.severity).mapValues(\.count)
    var out = ""
    if let top = r.findings.first, top.severity != .info {
      out += "**What is wrong:** \(inline(top.summary)).  \n"
      if let evidence = top.evidence.first { out += "**Why:** \(inline(evidence)).  \n" }
      if let fix = top.remediation { out += "**What to do:** \(inline(fix)).\n" }
    } else {
      let imbalanced = r.services.filter { $0.distribution.imbalanced }.count
      out +=
        "**No problem found:** \(r.services.count) service(s), \(imbalanced) imbalanced, no warning or critical finding.\n"
    }
    out +=
      "\n\(r.connections) connections read, \(r.connections - r.connectionsWithoutDNAT) of them to \(r.services.count) service frontend(s); "
    out +=
      "findings: \(counts[.critical] ?? 0) critical, \(counts[.warning] ?? 0) warning, \(counts[.info] ?? 0) info.\n"
    return out
  }

  func findings(_ r: AnalysisResult) -> String {
    guard !r.findings.isEmpty else { return "" }
    var out = "## Findings\n\n"
    for (i, f) in r.findings.enumerated() {
      out += "\(i + 1). **\(f.severity.rawValue)** `\(f.code)`: \(inline(f.summary)).\n"
      for e in f.evidence { out += "   - \(inline(e))\n" }
      if let fix = f.remediation { out += "   - **Fix:** \(inline(fix))\n" }
    }
    return out + "\n"
  }

  func servicesSection(_ r: AnalysisResult, extra: (Int) -> String) -> String {
    guard !r.services.isEmpty else {
      var out = "## Services\n\nNo destination-translated (Service) connections were found"
      if r.servicesFilteredOut > 0 {
        out += "; \(r.servicesFilteredOut) frontend(s) were left out by --service"
      }
      return out + ".\n\n"
    }
    var out = "## Services\n\n"
    for (index, s) in r.services.enumerated() {
      out += "### \(inline(s.label))\n\n"
      let frontends = s.frontends.map { "`\($0)`" }.joined(separator: ", ")
      let d = s.distribution
      out +=
        "\(s.proto) \(frontends): \(s.connections) connections to \(s.backends.count) backend(s), \(s.failedConnections) failed. "
      let verdict = inline(d.verdict).capitalizedFirst
      out += (d.imbalanced ? "**\(verdict).**" : "\(verdict).") + "\n\n"

      // Expected shares and Pod names only when something (rules, --k8s) gave them.
      let columns = expectedColumns(s)
      out += "| Backend | Connections |" + columns.map { " \($0.title) |" }.joined()
      out += " Share | 95% interval | | Failed | Packets | Bytes |\n"
      out +=
        "|---|---:|" + String(repeating: "---:|", count: columns.count) + "---:|---:|---|---:|---:|---:|\n"
      for b in s.backends {
        let share = b.observedShare ?? 0
        let interval =
          b.shareInterval.map { "\(NumberText.percent($0.lower))–\(NumberText.percent($0.upper))" } ?? "–"
        let pod = b.pod.map { " \(cell($0))" } ?? ""
        let expectedCells = columns.map { " \($0.share(b).map(NumberText.percent) ?? "–") |" }.joined()
        out +=
          "| `\(b.address)`\(pod) | \(b.connections) |\(expectedCells) \(NumberText.percent(share)) | \(interval) | \(bar(share)) | "
        out +=
          "\(b.failedConnections.map(String.init) ?? "–") | \(b.packets.map(String.init) ?? "–") | \(b.bytes.map(String.init) ?? "–") |\n"
      }
      if let note = expectedNote(s, columns: columns) { out += "\n" + note + "\n" }
      out += "\n"
      out += chart(s)
      if s.backends.contains(where: { $0.handshakeRTT != nil || $0.httpRequests != nil }) {
        out += "| Backend | Handshake RTT p50 | p90 | p99 | HTTP requests |\n|---|---:|---:|---:|---:|\n"
        for b in s.backends {
          let rtt =
            b.handshakeRTT.map { [$0.p50, $0.p90, $0.p99].map { "\(NumberText.decimal($0, places: 3)) ms" } }
            ?? ["–", "–", "–"]
          out +=
            "| `\(b.address)` | \(rtt.joined(separator: " | ")) | \(b.httpRequests.map(String.init) ?? "–") |\n"
        }
        out += "\n"
      }
      for c in s.cookieAffinity {
        out +=
          "Cookie affinity: `\(c.name)` — \(c.values) value(s) over \(c.connections) connections, \(NumberText.percent(c.consistency)) on the value's usual backend (e.g. `\(c.example)`).\n\n"
      }
      out += "Distribution over \(d.backendCount) backends (expected: \(inline(d.expectation))): "
      var stats: [String] = []
      stats.append("max/min \(d.maxMinRatio.map(decimal2) ?? "∞")")
      if let r = d.maxMeanRatio { stats.append("max/mean \(decimal2(r))") }
      stats.append("CV \(decimal2(d.coefficientOfVariation))")
      stats.append("Gini \(decimal2(d.gini))")
      if let chi = d.chiSquare, let df = d.degreesOfFreedom { stats.append("χ² \(decimal2(chi)) (df \(df))") }
      if let p = d.pValue {
        switch d.pValueMethod {
        case "exact": stats.append("\(NumberText.pValue(p)) (exact)")
        case "monte-carlo": stats.append("\(NumberText.pValue(p)) (\(d.simulations ?? 0) simulations)")
        default: stats.append("\(NumberText.pValue(p))")
        }
      }
      if let w = d.effectSize { stats.append("w \(decimal2(w))") }
      out += stats.joined(separator: ", ") + ".\n\n"

      if !s.clients.isEmpty {
        let shown = s.clients.prefix(topClients)
        out += "Clients (\(s.clientTotals.clients) address(es), busiest first):\n\n"
        out += "| Client | Connections | Backends | Sticky |\n|---|---:|---|---|\n"
        for c in shown {
          let backends = c.backends.map { "`\($0.backend)` ×\($0.connections)" }.joined(separator: ", ")
          let sticky: String
          switch c.sticky {
          case true?: sticky = "yes (\(NumberText.pValue(c.stickyPValue ?? 0)))"
          case false?: sticky = "no"
          case nil: sticky = "too few to tell"
          }
          out += "| `\(c.address)` | \(c.connections) | \(backends) | \(sticky) |\n"
        }
        if s.clientTotals.clients > shown.count {
          let restConnections = s.clientTotals.connections - shown.reduce(0) { $0 + $1.connections }
          out += "| … \(s.clientTotals.clients - shown.count) more | \(restConnections) | | |\n"
        }
        if s.droppedClientConnections > 0 {
          out +=
            "\n\(s.droppedClientConnections) further connection(s) came from clients past the per-service client limit; they count in the backend table but not here.\n"
        }
        out += "\n"
      }
      out += extra(index)
    }
    return out
  }

  /// One expected-share column of the backend table.
  struct ExpectedColumn {
    var title: String
    var share: (BackendResult) -> Double?
  }

  /// The expected-share columns: none without rules; one when cluster-IP and external traffic
  /// have the same shares; under externalTrafficPolicy Local, where they differ, one per kind of
  /// traffic, and a third for the observed mix when both kinds arrived.
  func expectedColumns(_ s: ServiceResult) -> [ExpectedColumn] {
    guard s.backends.contains(where: { $0.expectedShare != nil }) else { return [] }
    guard Self.sharesDiffer(s) else {
      return [ExpectedColumn(title: "Expected") { $0.expectedShareForTraffic ?? $0.expectedShare }]
    }
    var columns = [
      ExpectedColumn(title: "Expected, ClusterIP") { $0.expectedShare },
      ExpectedColumn(title: "Expected, NodePort/LB") { $0.expectedShareExternal ?? $0.expectedShare },
    ]
    if let t = s.frontendTraffic, t.clusterIP > 0, t.external > 0 {
      columns.append(ExpectedColumn(title: "Expected, this mix") { $0.expectedShareForTraffic })
    }
    return columns
  }

  /// Whether a backend's expected share differs between cluster-IP and external traffic.
  static func sharesDiffer(_ s: ServiceResult) -> Bool {
    s.backends.contains { b in
      b.expectedShareExternal.map { abs($0 - (b.expectedShare ?? 0)) > 1e-9 } ?? false
    }
  }

  /// Which expected column the verdict compares with, when there are several.
  func expectedNote(_ s: ServiceResult, columns: [ExpectedColumn]) -> String? {
    guard columns.count > 1 else { return nil }
    let policy = s.externalTrafficPolicy.map { "externalTrafficPolicy \($0)" } ?? "the rules"
    let why =
      "under \(policy) this node sends traffic to NodePort/LoadBalancer/external addresses only to its own endpoints (the NodePort/LB column), traffic to the cluster IP to all of them (the ClusterIP column)"
    guard let t = s.frontendTraffic, t.clusterIP + t.external > 0 else {
      return "Expected shares: \(why)."
    }
    switch (t.clusterIP, t.external) {
    case (0, _):
      return
        "Expected shares: \(why); all \(t.external) observed connection(s) arrived on a NodePort/LB address, so the verdict compares with the NodePort/LB column."
    case (_, 0):
      return
        "Expected shares: \(why); all \(t.clusterIP) observed connection(s) went to the cluster IP, so the verdict compares with the ClusterIP column."
    default:
      return
        "Expected shares: \(why); \(t.external) observed connection(s) arrived on a NodePort/LB address and \(t.clusterIP) went to the cluster IP, so the verdict compares with their mix (the last column)."
    }
  }

  func translatedSection(_ r: AnalysisResult) -> String {
    guard !r.translatedSources.isEmpty else { return "" }
    var out = "## Translated sources\n\nAddresses that stand for other sources after SNAT on this node.\n\n"
    out +=
      "| Address | Original sources | Connections | Estimated hosts | Examples |\n|---|---:|---:|---:|---|\n"
    for t in r.translatedSources {
      let count = (t.originalSourceCountIsLowerBound ? "≥" : "") + String(t.originalSourceCount)
      let examples = t.exampleSources.map { "`\($0)`" }.joined(separator: ", ")
      out +=
        "| `\(t.address)` | \(count) | \(t.connections) | \(t.estimatedHosts.map(String.init) ?? "–") | \(examples) |\n"
    }
    let withEvidence = r.translatedSources.filter { !$0.evidence.isEmpty }
    if !withEvidence.isEmpty {
      out +=
        "\nEvidence of hosts behind each address (a lower bound: the largest count of any one signal):\n\n"
      for t in withEvidence {
        out += "- `\(t.address)`: " + t.evidence.map(inline).joined(separator: "; ") + "\n"
      }
    }
    return out + "\n"
  }

  func inputsSection(_ r: AnalysisResult, tool: ToolInfo) -> String {
    var out = "## Appendix: inputs\n\n"
    out +=
      "| Input | Kind | Records | Truncated | Malformed | Unsupported | Partial |\n|---|---|---:|---:|---:|---:|---|\n"
    for i in r.inputs {
      out +=
        "| `\(cell(i.path))` | \(i.kind.rawValue) | \(i.records) | \(i.truncated) | \(i.malformed) | \(i.unsupported) | \(i.partial ? "yes" : "no") |\n"
    }
    for i in r.inputs where !i.examples.isEmpty || !i.notes.isEmpty {
      out += "\n`\(cell(i.path))`:\n"
      for note in i.notes { out += "- \(inline(note))\n" }
      for e in i.examples { out += "- line \(e.line): \(e.kind.rawValue): \(inline(e.message))\n" }
    }
    out += "\n_Made by \(tool.name) \(tool.version)._\n"
    return out
  }

  /// A Mermaid pie of connections per backend, which GitHub and GitLab draw in place of the
  /// code block (`showData` prints the counts). Mermaid wants positive slices, so backends without
  /// connections are left out of the chart (the table above lists them); no chart without
  /// connections at all.
  func chart(_ s: ServiceResult) -> String {
    let slices = s.backends.filter { $0.connections > 0 }
    guard !slices.isEmpty else { return "" }
    var out = "```mermaid\npie showData title \(mermaidText("Connections per backend of " + s.label))\n"
    for b in slices {
      var label = b.address.description
      if let pod = b.pod { label += " " + pod }
      out += "    \"\(mermaidText(label))\" : \(b.connections)\n"
    }
    return out + "```\n\n"
  }

  /// Text safe in a Mermaid pie: no quotes, no line breaks, no `#` or `;` (Mermaid's entity and
  /// statement marks).
  func mermaidText(_ text: String) -> String {
    String(inline(text).map { $0 == "\"" || $0 == "#" || $0 == ";" ? "'" : $0 })
  }

  // MARK: - Text helpers

  /// A bar of `barWidth` cells for a share in [0, 1], in eighths.
  func bar(_ share: Double) -> String {
    let eighths = Int((max(0, min(1, share)) * Double(barWidth * 8)).rounded())
    let partials = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]
    let full = String(repeating: "█", count: eighths / 8)
    return full + partials[eighths % 8]
  }

  func decimal2(_ value: Double) -> String { NumberText.decimal(value, places: 2) }

  /// Text on one line, for paragraphs and list items.
  func inline(_ text: String) -> String {
    String(text.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
  }

  /// Text safe inside a table cell and a code span: pipes escaped, backticks replaced.
  func cell(_ text: String) -> String {
    var out = ""
    for ch in inline(text) {
      switch ch {
      case "|": out += "\\|"
      case "`": out += "'"
      default: out.append(ch)
      }
    }
    return out
  }
}

extension String {
  var capitalizedFirst: String {
    guard let first else { return self }
    return first.uppercased() + dropFirst()
  }
}
