import LBCore

/// kube-proxy's *iptables* mode as `nft list ruleset` shows it when iptables runs on the
/// nf_tables backend (iptables-nft): `KUBE-SERVICES`, `KUBE-NODEPORTS`, `KUBE-SVC-…`,
/// `KUBE-EXT-…`, `KUBE-SEP-…` chains translated into nft syntax
/// (`meta l4proto tcp ip daddr 10.43.0.10 tcp dport 53 counter packets 0 bytes 0 jump KUBE-SVC-…`).
///
/// The translation keeps addresses, ports, jumps, DNAT targets and counters, but
/// `-m statistic --mode random --probability` has no native nft form and is listed as an
/// opaque `xt match` (or not at all), so a service with more than one endpoint gets
/// `expectedShare == nil` and one counted `unsupported` issue.
struct NFTIptablesChainsDecoder {
  let table: NFTTable
  let input: Int
  var summary: InputSummary

  private struct Builder {
    var name: String?
    var proto: TransportProtocol?
    var frontends: [ServiceFrontend] = []
    var svcChain: Substring?
    var line: Int
  }
  private var builders: [Substring: Builder] = [:]
  private var order: [Substring] = []

  init(table: NFTTable, input: Int, summary: InputSummary) {
    self.table = table
    self.input = input
    self.summary = summary
  }

  /// Whether a chain name is one of kube-proxy's iptables-mode chains.
  static func isKubeChain(_ name: Substring) -> Bool { name.hasPrefix("KUBE-") }

  /// The hash that KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-FW- and KUBE-XLB- chains of one
  /// service port share.
  private static func serviceHash(_ chain: Substring) -> Substring? {
    for prefix in ["KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-XLB-"]
    where chain.hasPrefix(prefix) {
      return chain.dropFirst(prefix.count)
    }
    return nil
  }

  private mutating func builder(_ hash: Substring, line: Int) -> Substring {
    if builders[hash] == nil {
      builders[hash] = Builder(line: line)
      order.append(hash)
    }
    return hash
  }

  private static func jumpTarget(_ t: [Substring]) -> Substring? {
    guard let j = t.lastIndex(where: { $0 == "jump" || $0 == "goto" }), j + 1 < t.count else { return nil }
    return t[j + 1]
  }

  private static func value(after keyword: Substring, in t: [Substring]) -> Substring? {
    guard let i = t.firstIndex(of: keyword), i + 1 < t.count else { return nil }
    return t[i + 1]
  }

  /// `ip daddr A` / `ip6 daddr A` and `tcp dport P` of a rule.
  private static func destination(_ t: [Substring]) -> (IPAddress?, UInt16?, TransportProtocol?) {
    var address: IPAddress?
    var port: UInt16?
    var proto: TransportProtocol?
    for i in t.indices where i + 1 < t.count {
      if t[i] == "daddr", let a = IPAddress(String(t[i + 1])) { address = a }
      if t[i] == "dport", let p = UInt16(t[i + 1]), i > 0 {
        port = p
        proto = NFTKubeProxyDecoder.transport(t[i - 1]) ?? proto
      }
      if t[i] == "l4proto", let p = NFTKubeProxyDecoder.transport(t[i + 1]) { proto = p }
    }
    return (address, port, proto)
  }

  private static func commentName(_ t: [Substring]) -> String? {
    guard let c = value(after: "comment", in: t) else { return nil }
    let text = NFTSyntax.unquote(c)
    guard let word = text.split(separator: " ").first, word.contains("/") else { return nil }
    return String(word)
  }

  mutating func decode() -> [ServiceRule] {
    var skipped = 0
    for name in table.chainOrder {
      guard let chain = table.chains[name] else { continue }
      if !Self.isKubeChain(name) {
        skipped += 1
        summary.record(
          InputIssue(
            kind: .unsupported, line: chain.line, message: "chain \(name) is not kube-proxy's; skipped"))
        continue
      }
      if name == "KUBE-SERVICES" || name == "KUBE-NODEPORTS" {
        for rule in chain.rules {
          guard let target = Self.jumpTarget(rule.tokens), let hash = Self.serviceHash(target) else {
            continue
          }
          let key = builder(hash, line: rule.line)
          let (address, port, proto) = Self.destination(rule.tokens)
          guard let port else { continue }
          let kind: FrontendKind =
            name == "KUBE-NODEPORTS" ? .nodePort : (target.hasPrefix("KUBE-SVC-") ? .clusterIP : .externalIP)
          let frontend = ServiceFrontend(address: kind == .nodePort ? nil : address, port: port, kind: kind)
          if builders[key]?.frontends.contains(frontend) == false {
            builders[key]?.frontends.append(frontend)
          }
          if let proto { builders[key]?.proto = proto }
          if let n = Self.commentName(rule.tokens) { builders[key]?.name = n }
        }
      } else if name.hasPrefix("KUBE-SVC-") || name.hasPrefix("KUBE-SVL-"), let hash = Self.serviceHash(name)
      {
        let key = builder(hash, line: chain.line)
        builders[key]?.svcChain = name
      }
    }
    if skipped > 0 {
      summary.notes.append(
        "\(skipped) chain(s) of table \(table.family) \(table.name.isEmpty ? "(fragment)" : String(table.name)) are not kube-proxy's"
      )
    }
    var services: [ServiceRule] = []
    for key in order {
      if let b = builders[key] { services.append(service(b)) }
    }
    return services
  }

  private mutating func service(_ b: Builder) -> ServiceRule {
    var rule = ServiceRule(
      name: b.name, proto: b.proto ?? .tcp, source: .nft, chain: b.svcChain.map(String.init),
      location: SourceLocation(input: input, line: b.line))
    var frontends = b.frontends
    var jumps: [(Substring, NFTRule)] = []
    var probabilistic = false
    if let svcName = b.svcChain, let svc = table.chains[svcName] {
      rule.location = SourceLocation(input: input, line: svc.line)
      for r in svc.rules {
        let t = r.tokens
        if t.contains("KUBE-MARK-MASQ") {
          let (address, port, proto) = Self.destination(t)
          if let proto { rule.proto = proto }
          if let address, let port {
            let f = ServiceFrontend(address: address, port: port, kind: .clusterIP)
            if !frontends.contains(where: { $0.address == address && $0.port == port }) {
              frontends.append(f)
            }
          }
          if let s = t.firstIndex(of: "saddr"), s + 1 < t.count, t[s + 1] == "!=" {
            rule.masquerade.insert(.clusterIPFromOutsideCluster)
          } else {
            rule.masquerade.insert(.clusterIPAll)
          }
          if rule.name == nil { rule.name = Self.commentName(t) }
        } else if let target = Self.jumpTarget(t), target.hasPrefix("KUBE-SEP-") {
          jumps.append((target, r))
          if t.contains("statistic") || t.contains("random") || t.contains("xt") { probabilistic = true }
          if rule.name == nil { rule.name = Self.commentName(t) }
        }
      }
    }
    rule.frontends = frontends.sorted()
    var counted = false
    for (target, jump) in jumps {
      guard let sep = table.chains[target] else {
        summary.record(
          InputIssue(kind: .truncated, line: jump.line, message: "chain \(target) is not in the input"))
        summary.partial = true
        continue
      }
      var endpoint: Endpoint?
      var packets: UInt64?
      var bytes: UInt64?
      var line = sep.line
      for r in sep.rules {
        let t = r.tokens
        if let dnat = t.firstIndex(of: "dnat"), let to = t[dnat...].firstIndex(of: "to"), to + 1 < t.count {
          endpoint = NFTKubeProxyDecoder.endpoint(t[to + 1])
          (packets, bytes) = NFTKubeProxyDecoder.counter(t)
          line = r.line
        } else if t.contains("KUBE-MARK-MASQ"), t.contains("saddr") {
          rule.masquerade.insert(.hairpin)
        }
      }
      guard let endpoint else { continue }
      var backend = BackendRule(
        endpoint: endpoint, observedConnections: packets, observedBytes: bytes, chain: String(target),
        location: SourceLocation(input: input, line: line))
      if jumps.count == 1 {
        backend.expectedShare = 1
      } else if !counted {
        counted = true
        summary.record(
          InputIssue(
            kind: .unsupported, line: jump.line,
            message:
              "\(rule.name ?? String(b.svcChain ?? "service")): iptables-nft listing does not show the statistic match's probability\(probabilistic ? "" : " (no match printed at all)"); shares unknown"
          ))
      }
      rule.backends.append(backend)
    }
    if rule.backends.contains(where: { $0.observedConnections != nil }) {
      rule.observedCounterSource = "iptables-nft nat DNAT rule counters (nft listing)"
    }
    return rule
  }
}
