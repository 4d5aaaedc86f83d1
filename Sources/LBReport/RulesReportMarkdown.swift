import LBAnalysis
import LBCore

/// The Markdown report of `lbscope rules`: findings first, then per service its frontends,
/// affinity, policy, masquerade and a backend table with expected shares, the datapath's own
/// counters and pinned clients; then the packet trace, if asked for, and the inputs.
/// Renders; decides nothing.
public struct RulesReportMarkdown {
  /// Pinned clients listed per service.
  public var maxPins = 20
  /// Services shown in full; the rest are listed in one line each.
  public var maxServices = 200
  let text = MarkdownReport()

  public init(maxServices: Int = 200) { self.maxServices = maxServices }

  public func render(_ r: RulesResult, tool: ToolInfo) -> String {
    var out = "# lbscope rules\n\n"
    let backends = r.services.reduce(0) { $0 + $1.backends.count }
    let pins = r.services.reduce(0) { $0 + $1.pinnedClients.count }
    out += "\(r.services.count) service(s), \(backends) backend(s), \(pins) pinned client(s)"
    if r.servicesFilteredOut > 0 { out += "; \(r.servicesFilteredOut) left out by --service" }
    let counts = Dictionary(grouping: r.findings, by: \.severity).mapValues(\.count)
    out +=
      "; findings: \(counts[.critical] ?? 0) critical, \(counts[.warning] ?? 0) warning, \(counts[.info] ?? 0) info.\n\n"
    out += findings(r)
    if let trace = r.trace { out += self.trace(trace) }
    out += servicesSection(r)
    if !r.unlinkedPins.isEmpty {
      out += "## Pinned clients without a service\n\n"
      out +=
        "These xt_recent lists match no endpoint of the rules given (pass the node's iptables-save too).\n\n"
      for pin in r.unlinkedPins.prefix(maxPins * 5) { out += "- \(pinText(pin))\n" }
      out += "\n"
    }
    out += inputs(r, tool: tool)
    return out
  }

  func findings(_ r: RulesResult) -> String {
    guard !r.findings.isEmpty else { return "" }
    var out = "## Findings\n\n"
    for (i, f) in r.findings.enumerated() {
      out += "\(i + 1). **\(f.severity.rawValue)** `\(f.code)`: \(text.inline(f.summary)).\n"
      for e in f.evidence { out += "   - \(text.inline(e))\n" }
      if let fix = f.remediation { out += "   - **Fix:** \(text.inline(fix))\n" }
    }
    return out + "\n"
  }

  func servicesSection(_ r: RulesResult) -> String {
    guard !r.services.isEmpty else { return "## Services\n\nThe rules describe no service.\n\n" }
    var out = "## Services\n\n"
    for (index, s) in r.services.enumerated() {
      let label = s.name ?? s.frontends.first.map { "\(s.proto)/\($0)" } ?? s.chain ?? "?"
      if index >= maxServices {
        if index == maxServices { out += "Further services (one line each):\n\n" }
        out +=
          "- `\(text.cell(label))`: \(s.frontends.map(\.description).joined(separator: ", ")); \(s.backends.count) backend(s)\n"
        continue
      }
      out += "### \(text.inline(label))\n\n"
      let frontends = s.frontends.map { "`\($0)` (\($0.kind.rawValue))" }.joined(separator: ", ")
      out += "- Frontends: \(frontends.isEmpty ? "none in the rules given" : frontends), \(s.proto)\n"
      if let chain = s.chain {
        out += "- Chain: `\(chain)` (input \(s.location.input + 1), line \(s.location.line))\n"
      }
      out +=
        "- Affinity: \(s.affinity.map { "\($0.mode), timeout \($0.timeoutSeconds.map { "\($0) s" } ?? "unknown") (\($0.source.rawValue))" } ?? "none")\n"
      out +=
        "- externalTrafficPolicy: \(s.externalTrafficPolicy?.rawValue ?? "unknown (no external frontend)")"
      if let local = s.noLocalEndpoints {
        out += "; no local endpoints: external traffic is \(local == .drop ? "dropped" : "rejected")"
      }
      out += "\n"
      out +=
        "- Masquerade: \(s.masquerade.isEmpty ? "none seen" : s.masquerade.sorted().map(\.rawValue).joined(separator: ", "))\n"
      if let none = s.noEndpoints, s.backends.isEmpty {
        out += "- No endpoints: traffic is \(none == .drop ? "dropped" : "rejected")\n"
      }
      if let source = s.observedCounterSource { out += "- Observed: \(source)\n" }
      if let d = r.distributions[index] { out += "- Counters vs rules: \(text.inline(d.verdict))\n" }
      out += "\n"
      if !s.backends.isEmpty {
        out +=
          "| Backend | Probability | Expected share | External share | Local | New connections | Observed share | | Pinned |\n"
        out += "|---|---:|---:|---:|---|---:|---:|---|---:|\n"
        let total = s.backends.reduce(UInt64(0)) { $0 &+ ($1.observedConnections ?? 0) }
        for b in s.backends {
          let pinned = s.pinnedClients.filter { $0.backend == b.endpoint }.count
          let observed = b.observedConnections.map { total > 0 ? Double($0) / Double(total) : 0 }
          out +=
            "| `\(b.endpoint)` | \(b.probability.map { NumberText.decimal($0, places: 11) } ?? "rest") | "
          out +=
            "\(b.expectedShare.map(NumberText.percent) ?? "–") | \(b.expectedShareExternal.map(NumberText.percent) ?? "–") | "
          out +=
            "\(b.isLocal.map { $0 ? "yes" : "no" } ?? "–") | \(b.observedConnections.map(String.init) ?? "–") | "
          out += "\(observed.map(NumberText.percent) ?? "–") | \(observed.map(text.bar) ?? "") | "
          out += "\(s.affinity != nil || !s.pinnedClients.isEmpty ? String(pinned) : "–") |\n"
        }
        out += "\n"
      }
      if !s.pinnedClients.isEmpty {
        out += "Pinned clients (\(s.pinnedClients.count)):\n\n"
        for pin in s.pinnedClients.prefix(maxPins) { out += "- \(pinText(pin))\n" }
        if s.pinnedClients.count > maxPins { out += "- … and \(s.pinnedClients.count - maxPins) more\n" }
        out += "\n"
      }
    }
    return out
  }

  func pinText(_ pin: PinnedClient) -> String {
    var out = "`\(pin.client)`"
    if let b = pin.backend { out += " → `\(b)`" }
    if let age = pin.lastSeenAgeSeconds {
      out += ", last seen \(NumberText.decimal(age, places: 1)) s ago"
    } else if let j = pin.lastSeenJiffies {
      out += ", last seen at jiffies \(j) (age unknown: give --jiffies and --hz)"
    }
    if let left = pin.expiresInSeconds { out += ", expires in \(NumberText.decimal(left, places: 0)) s" }
    if let hits = pin.hits { out += ", \(hits) hit timestamp(s)" }
    if let list = pin.list { out += " (\(pin.source.rawValue) `\(list)`)" }
    return out
  }

  func trace(_ t: PacketTrace) -> String {
    var out = "## Trace: \(t.proto) \(t.source) → \(t.destination)\n\n```\n"
    for step in t.steps {
      out += String(repeating: "  ", count: step.depth)
      out += "\(step.table)/\(step.chain)"
      if let line = step.line { out += ":\(line)" }
      out += ": \(text.inline(step.text))"
      if step.chance < 1 { out += "  [\(NumberText.percent(step.chance))]" }
      out += "\n"
    }
    out += "```\n\n"
    out += "| Outcome | Destination | Chance | Masqueraded | Via |\n|---|---|---:|---|---|\n"
    for o in t.outcomes {
      out +=
        "| \(o.verdict) | \(o.destination.map { "`\($0)`" } ?? "–") | \(NumberText.percent(o.chance)) | \(o.masqueraded ? "yes" : "no") | `\(o.chain)` |\n"
    }
    out += "\n"
    for a in t.assumptions { out += "- Assumed: \(text.inline(a))\n" }
    return out + (t.assumptions.isEmpty ? "" : "\n")
  }

  func inputs(_ r: RulesResult, tool: ToolInfo) -> String {
    var out = "## Inputs\n\n"
    for i in r.inputs {
      out +=
        "- `\(text.cell(i.path))` (\(i.kind.rawValue)): \(i.records) lines, \(i.truncated) truncated, \(i.malformed) malformed, \(i.unsupported) unsupported\(i.partial ? ", partial" : "")\n"
      for note in i.notes { out += "  - \(text.inline(note))\n" }
      for e in i.examples { out += "  - line \(e.line): \(e.kind.rawValue): \(text.inline(e.message))\n" }
    }
    if let clock = r.clockSource { out += "- xt_recent ages from: \(text.inline(clock))\n" }
    return out + "\n\(tool.name) \(tool.version)\n"
  }
}
