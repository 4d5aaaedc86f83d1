import LBCore

/// Reads kube-proxy's nftables datapath into services: `nft list ruleset`,
/// `nft [-a] list table ip|ip6 kube-proxy` (nested blocks, handles, counters) and the `nft -f`
/// transaction kube-proxy writes (`add table/chain/rule/set/map/element … kube-proxy …`).
///
/// The `kube-proxy` tables give frontends (`service-ips`, `service-nodeports`, `firewall-ips`),
/// endpoints and their chances (`numgen random mod N` maps: each slot is 1/N), traffic policy
/// (`external-…` and `local-…` chains), masquerade, no-endpoint verdicts, affinity timeouts and
/// the clients pinned now (affinity set elements with `expires`). kube-proxy iptables-mode
/// chains listed through iptables-nft (`KUBE-SVC-…` in nft syntax) are decoded as far as the
/// listing shows them; other tables' chains are counted as unsupported. See README.md beside this
/// file for the theory.
public enum NFTRulesReader {
  /// Reads `path` (`-` for standard input); `input` is the index recorded in locations.
  /// Throws only when the file cannot be read or holds no nft rules at all.
  public static func read(path: String, input: Int) throws(RulesReaderError) -> (
    services: [ServiceRule], summary: InputSummary
  ) {
    var parser = NFTRulesetParser(summary: InputSummary(path: path, kind: .nft))
    var lastLine = 0
    let cut = try DatapathTextFile.forEachLine(path: path) { line, number, overlong in
      parser.feed(line, number: number, overlong: overlong)
      lastLine = number
    }
    parser.finish()
    if cut && !parser.summary.partial {
      parser.summary.record(
        InputIssue(kind: .truncated, line: lastLine, message: "last line has no line end: cut"))
      parser.summary.partial = true
    }
    var summary = parser.summary
    var services: [ServiceRule] = []
    var recognised = false
    for table in parser.tables {
      if isKubeProxyTable(table) {
        recognised = true
        var decoder = NFTKubeProxyDecoder(table: table, input: input, summary: summary)
        services += decoder.decode()
        summary = decoder.summary
      } else if table.chainOrder.contains(where: NFTIptablesChainsDecoder.isKubeChain) {
        recognised = true
        summary.notes.append(
          "table \(table.family) \(table.name.isEmpty ? "(fragment)" : String(table.name)): kube-proxy iptables-mode chains through iptables-nft"
        )
        var decoder = NFTIptablesChainsDecoder(table: table, input: input, summary: summary)
        services += decoder.decode()
        summary = decoder.summary
      } else if !table.chainOrder.isEmpty || !table.sets.isEmpty {
        recognised = true
        summary.record(
          InputIssue(
            kind: .unsupported, line: table.line,
            message: "table \(table.family) \(table.name) holds no kube-proxy rules; skipped"))
      } else {
        recognised = true
      }
    }
    if !recognised {
      throw RulesReaderError(
        code: .notRules, path: path, line: summary.examples.first?.line,
        reason: "no nft tables, chains or commands in \(summary.records) lines",
        hint: "lbscope rules reads \(RulesReaderError.knownFormats)")
    }
    return (sortedDatapathServices(services), summary)
  }

  /// Whether the first lines of a file look like nft text: a `table`/`chain`/`set`/`map` block
  /// opening, or an nft command (`add table …`, `add rule …`, `flush ruleset`).
  public static func looksLike(_ firstLines: [Substring]) -> Bool {
    for raw in firstLines {
      let line = raw.trimmedBlanks
      if line.isEmpty || line.hasPrefix("#") { continue }
      let tokens = NFTSyntax.tokenize(line)
      guard let first = tokens.first else { continue }
      if ["table", "chain", "set", "map"].contains(first), tokens.last == "{" { return true }
      if ["add", "create", "insert", "replace", "flush", "delete", "destroy"].contains(first),
        tokens.count >= 2,
        ["table", "chain", "rule", "set", "map", "element", "ruleset"].contains(tokens[1])
      {
        return true
      }
      return false
    }
    return false
  }

  static func isKubeProxyTable(_ table: NFTTable) -> Bool {
    if table.name == "kube-proxy" { return true }
    if table.sets["service-ips"] != nil { return true }
    return table.chainOrder.contains { KubeProxyChainName($0) != nil }
  }
}

/// Services sorted by name (unnamed last), then first frontend, as `RuleSet` documents.
func sortedDatapathServices(_ services: [ServiceRule]) -> [ServiceRule] {
  services.sorted { a, b in
    switch (a.name, b.name) {
    case (let x?, let y?) where x != y: return x < y
    case (nil, _?): return false
    case (_?, nil): return true
    default:
      if a.proto != b.proto, a.name != nil { return a.proto < b.proto }
      switch (a.frontends.first, b.frontends.first) {
      case (let x?, let y?) where x != y: return x < y
      case (nil, _?): return false
      case (_?, nil): return true
      default: return a.location.line < b.location.line
      }
    }
  }
}
