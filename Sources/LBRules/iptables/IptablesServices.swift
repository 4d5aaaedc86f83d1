import LBCore

/// Turns a parsed dump into kube-proxy services by following the jump graph, not the chain
/// names: a chain with a DNAT rule is an endpoint; a chain that jumps to endpoints is a
/// balancing cascade; rules that select a destination (`-d`, `--dport`) on the way from
/// PREROUTING/OUTPUT to a cascade are frontends; the chain a frontend's external path ends in
/// says the traffic policy. Names come from `-m comment`, so a dump with unfamiliar chain names
/// still yields what it describes. The theory is in `Sources/LBRules/README.md`.
public struct IptablesServices {
  public let dump: IptablesDump
  let input: Int

  /// The masquerade bits: marks that KUBE-POSTROUTING (or any chain) masquerades on.
  var masqMarks: UInt32 = 0
  var dropMarks: UInt32 = 0
  var masqChains = Set<Int>()
  var dropChains = Set<Int>()
  var endpoints: [Int: EndpointChain] = [:]
  var cascades: [Int: Cascade] = [:]

  /// A chain that ends in DNAT: one endpoint.
  struct EndpointChain {
    var endpoint: Endpoint?
    var dnatRule: Int
    var affinityList: String?
    var hairpin = false
  }

  /// A chain that picks among endpoint chains.
  struct Cascade {
    var entries: [(rule: Int, endpointChain: Int)]
    var affinitySeconds: Int?
  }

  /// Where traffic that enters at a frontend goes.
  struct FrontendLink {
    var frontend: ServiceFrontend
    var proto: TransportProtocol?
    var name: String?
    /// The cascade that traffic from outside the cluster reaches, if any.
    var cascade: Int?
    /// Cascades reached only by some sources (pods, the node itself).
    var conditional: [Int] = []
    var external: Bool
    var masquerade = false
    var drop: NoEndpointsAction?
    var line: Int
  }

  public init(dump: IptablesDump, input: Int) {
    self.dump = dump
    self.input = input
    classify()
  }

  // MARK: - Classification

  mutating func classify() {
    for rule in dump.rules {
      guard let mark = rule.mark else { continue }
      switch rule.target {
      case .masquerade where !rule.markNegated: masqMarks |= mark.value & mark.mask
      case .return where rule.markNegated && chainName(rule.chain).contains("POSTROUTING"):
        masqMarks |= mark.value & mark.mask
      case .drop where !rule.markNegated: dropMarks |= mark.value & mark.mask
      default: break
      }
    }
    // kube-proxy's defaults (--iptables-masquerade-bit 14, drop bit 15) when the dump does not
    // show its POSTROUTING or firewall chains (excerpts).
    if masqMarks == 0 { masqMarks = 0x4000 }
    if dropMarks == 0 { dropMarks = 0x8000 }

    for (index, chain) in dump.chains.enumerated() {
      var endpoint: EndpointChain?
      var sawMasqMark = false
      var sawDropMark = false
      for r in chain.rules {
        let rule = dump.rules[r]
        switch rule.target {
        case .mark(let change):
          if change.setsBits & masqMarks != 0 && !rule.selectsSources && !rule.selectsDestination {
            sawMasqMark = true
          }
          if change.setsBits & dropMarks != 0 && !rule.selectsSources && !rule.selectsDestination {
            sawDropMark = true
          }
        case .dnat(let target):
          if endpoint == nil || endpoint?.endpoint == nil {
            endpoint = EndpointChain(
              endpoint: target, dnatRule: r,
              affinityList: rule.recent?.command == .set ? rule.recent?.name : nil)
          }
        default: break
        }
      }
      if sawMasqMark && chain.rules.count <= 2 { masqChains.insert(index) }
      if sawDropMark && chain.rules.count <= 2 { dropChains.insert(index) }
      if var endpoint {
        // Hairpin: the endpoint reaching itself through the service is masqueraded.
        for r in chain.rules where isMasquerade(dump.rules[r]) {
          let rule = dump.rules[r]
          if let s = rule.source, !rule.sourceNegated, let e = endpoint.endpoint, s.contains(e.address) {
            endpoint.hairpin = true
          }
        }
        // The affinity list may be set by a separate rule of the chain.
        if endpoint.affinityList == nil {
          for r in chain.rules where dump.rules[r].recent?.command == .set {
            endpoint.affinityList = dump.rules[r].recent?.name
          }
        }
        endpoints[index] = endpoint
      }
    }
    // Excerpts often lack the endpoint chains: a chain with no rules that a balancing rule
    // (`-m statistic`, `--rcheck`, or a `"ns/svc:p -> IP:PORT"` comment) jumps to stands for one
    // endpoint, known from the comment when it names one.
    for rule in dump.rules {
      guard let t = jumpTarget(rule), dump.chains[t].rules.isEmpty, endpoints[t] == nil else { continue }
      let named = rule.comment.flatMap(Self.commentEndpoint)
      guard rule.probability != nil || rule.recent?.command == .rcheck || named != nil else { continue }
      endpoints[t] = EndpointChain(
        endpoint: named,
        dnatRule: dump.rules.firstIndex { $0.line == rule.line && $0.chain == rule.chain } ?? 0)
    }
    if masqChains.isEmpty, let named = dump.chain("KUBE-MARK-MASQ") { masqChains.insert(named) }
    if dropChains.isEmpty, let named = dump.chain("KUBE-MARK-DROP") { dropChains.insert(named) }

    for (index, chain) in dump.chains.enumerated() where endpoints[index] == nil {
      var entries: [(Int, Int)] = []
      var seconds: Int?
      for r in chain.rules {
        let rule = dump.rules[r]
        guard let t = jumpTarget(rule), endpoints[t] != nil else { continue }
        if rule.recent?.command == .rcheck {
          seconds = rule.recent?.seconds.map(Int.init) ?? seconds
          continue
        }
        if rule.selectsSources { continue }
        entries.append((r, t))
      }
      if !entries.isEmpty { cascades[index] = Cascade(entries: entries, affinitySeconds: seconds) }
    }
  }

  func chainName(_ index: Int) -> String { dump.chains[index].name }

  func jumpTarget(_ rule: IptablesRule) -> Int? {
    switch rule.target {
    case .jump(let t), .goto(let t): t
    default: nil
    }
  }

  func isMasquerade(_ rule: IptablesRule) -> Bool {
    switch rule.target {
    case .jump(let t), .goto(let t): return masqChains.contains(t)
    case .mark(let change): return change.setsBits & masqMarks != 0
    default: return false
    }
  }

  func isMarkDrop(_ rule: IptablesRule) -> Bool {
    switch rule.target {
    case .jump(let t), .goto(let t): return dropChains.contains(t)
    case .mark(let change): return change.setsBits & dropMarks != 0
    default: return false
    }
  }

  /// A cascade to balance with, for a chain a frontend jumps to: its own cascade, or itself
  /// when it is an endpoint chain reached directly.
  func isBalancing(_ chain: Int) -> Bool { cascades[chain] != nil || endpoints[chain] != nil }

  // MARK: - Frontends

  /// Entry points: nat PREROUTING and OUTPUT, and every nat chain nothing jumps to (excerpts
  /// that lack the built-in chains).
  func roots() -> [Int] {
    var referenced = Set<Int>()
    for rule in dump.rules { if let t = jumpTarget(rule) { referenced.insert(t) } }
    var out: [Int] = []
    for name in ["PREROUTING", "OUTPUT"] { if let c = dump.chain(name) { out.append(c) } }
    for (index, chain) in dump.chains.enumerated()
    where chain.table == "nat" && !referenced.contains(index) && !out.contains(index)
      && !isBalancing(index) && !masqChains.contains(index)
    {
      out.append(index)
    }
    return out
  }

  /// Every frontend and where it leads, plus the masquerade rules met on the way (keyed by the
  /// frontend they select).
  func frontendLinks() -> (links: [FrontendLink], masq: [FrontendKey: Set<MasqueradeReason>]) {
    var links: [FrontendLink] = []
    var masq: [FrontendKey: Set<MasqueradeReason>] = [:]
    var visited = Set<Int>()
    var stack: [(chain: Int, nodePort: Bool, depth: Int)] = roots().map { ($0, false, 0) }
    while let (chain, nodePortContext, depth) = stack.popLast() {
      guard depth < 16, visited.insert(chain).inserted else { continue }
      let nodePort = nodePortContext || chainName(chain).contains("NODEPORT")
      for r in dump.chains[chain].rules {
        let rule = dump.rules[r]
        if isMasquerade(rule) {
          if rule.selectsDestination, let key = FrontendKey(rule, nodePort: nodePort) {
            let reason: MasqueradeReason =
              rule.sourceNegated
              ? .clusterIPFromOutsideCluster
              : (nodePort || key.kind != .clusterIP) ? .externalPolicyCluster : .clusterIPAll
            masq[key, default: []].insert(reason)
          }
          continue
        }
        guard let target = jumpTarget(rule) else { continue }
        if rule.selectsDestination || isBalancing(target) {
          links.append(link(rule, target: target, nodePort: nodePort))
        } else {
          stack.append((target, nodePort || rule.destinationLocal == true, depth + 1))
        }
      }
    }
    return (links, masq)
  }

  /// The identity of a frontend for joining masquerade rules with the jumps they precede.
  struct FrontendKey: Hashable {
    var address: IPAddress?
    var port: UInt16
    var proto: TransportProtocol?
    var kind: FrontendKind

    init?(_ rule: IptablesRule, nodePort: Bool) {
      guard let port = rule.destinationPort?.single else { return nil }
      let host = rule.destination.flatMap { $0.isHost && !rule.destinationNegated ? $0.address : nil }
      address = nodePort && rule.destination?.isHost != true ? nil : host
      self.port = port
      proto = rule.proto
      kind = IptablesServices.frontendKind(
        comment: rule.comment, nodePort: address == nil, fallback: .clusterIP)
    }
  }

  static func frontendKind(comment: String?, nodePort: Bool, fallback: FrontendKind) -> FrontendKind {
    if nodePort { return .nodePort }
    if let comment {
      if comment.hasSuffix("cluster IP") { return .clusterIP }
      if comment.hasSuffix("external IP") { return .externalIP }
      if comment.hasSuffix("loadbalancer IP") || comment.hasSuffix("LB IP") { return .loadBalancer }
    }
    return fallback
  }

  func link(_ rule: IptablesRule, target: Int, nodePort: Bool) -> FrontendLink {
    let host = rule.destination.flatMap { $0.isHost && !rule.destinationNegated ? $0.address : nil }
    let isNodePort = host == nil && (nodePort || rule.destinationLocal == true || rule.destinationPort != nil)
    let direct = isBalancing(target)
    let kind = Self.frontendKind(
      comment: rule.comment, nodePort: isNodePort, fallback: direct ? .clusterIP : .externalIP)
    let frontend = ServiceFrontend(address: host, port: rule.destinationPort?.single ?? 0, kind: kind)
    var link = FrontendLink(
      frontend: frontend, proto: rule.proto, name: rule.comment.flatMap(Self.serviceName),
      cascade: nil, external: kind != .clusterIP, line: rule.line)
    if direct {
      link.cascade = target
    } else {
      var path = ExternalPath()
      follow(target, depth: 0, into: &path)
      link.cascade = path.cascade
      link.conditional = path.conditional
      link.masquerade = path.masquerade
      link.drop = path.drop
    }
    return link
  }

  /// What traffic from outside the cluster meets on its way from a frontend's first chain.
  struct ExternalPath {
    var cascade: Int?
    var conditional: [Int] = []
    var masquerade = false
    var drop: NoEndpointsAction?
    var done: Bool { cascade != nil || drop != nil }
  }

  /// Walks `chain` as a packet from outside the cluster would: rules for pod or node-local
  /// sources are noted but not taken; a source-range rule (load-balancer source ranges) is
  /// taken only when no unconditional rule follows it.
  func follow(_ chain: Int, depth: Int, into path: inout ExternalPath) {
    guard depth < 8 else { return }
    let rules = dump.chains[chain].rules
    for (k, r) in rules.enumerated() {
      let rule = dump.rules[r]
      let applies = appliesToExternal(rule, later: rules[(k + 1)...])
      if isMasquerade(rule) {
        if applies { path.masquerade = true }
        continue
      }
      if isMarkDrop(rule) {
        if applies {
          path.drop = .drop
          return
        }
        continue
      }
      switch rule.target {
      case .drop where applies:
        path.drop = .drop
        return
      case .reject where applies:
        path.drop = .reject
        return
      case .jump(let t), .goto(let t):
        if endpoints[t] != nil {
          if rule.recent?.command == .rcheck { continue }
          if applies, cascades[chain] != nil {
            path.cascade = chain
            return
          }
          if applies {
            path.cascade = t
            return
          }
          continue
        }
        if cascades[t] != nil {
          if applies {
            path.cascade = t
            return
          }
          path.conditional.append(t)
          continue
        }
        var sub = ExternalPath()
        follow(t, depth: depth + 1, into: &sub)
        if applies {
          path.masquerade = path.masquerade || sub.masquerade
          path.conditional += sub.conditional
          if sub.done {
            path.cascade = sub.cascade
            path.drop = sub.drop
            return
          }
        } else {
          path.conditional += sub.conditional + (sub.cascade.map { [$0] } ?? [])
        }
      default:
        continue
      }
    }
  }

  func appliesToExternal(_ rule: IptablesRule, later: ArraySlice<Int>) -> Bool {
    if rule.sourceLocal == true { return false }
    guard let _ = rule.source, !rule.sourceNegated else { return true }
    if let comment = rule.comment, comment.hasPrefix("pod traffic") || comment.hasPrefix("Redirect pods") {
      return false
    }
    return !later.contains { r in
      let other = dump.rules[r]
      guard !other.selectsSources, other.recent == nil, other.probability == nil else { return false }
      switch other.target {
      case .drop, .reject: return true
      case .jump(let t), .goto(let t): return !masqChains.contains(t)
      default: return false
      }
    }
  }

  // MARK: - Names

  /// The endpoint of a `"ns/svc:port -> 10.0.0.1:80"` comment.
  static func commentEndpoint(_ comment: String) -> Endpoint? {
    guard let arrow = comment.split(separator: " ").firstIndex(of: "->") else { return nil }
    let words = comment.split(separator: " ")
    guard arrow + 1 < words.count else { return nil }
    return Endpoint(String(words[arrow + 1]))
  }

  /// `ns/svc:port` from a kube-proxy comment: the first word with a `/` and then a `:`
  /// (`"ns/svc:p -> 10.0.0.1:80"`, `"Balancing rule 0 for ns/svc:p"`, `"default/nginx: cluster IP"`).
  public static func serviceName(_ comment: String) -> String? {
    for word in comment.split(separator: " ") {
      guard let slash = word.firstIndex(of: "/"), slash != word.startIndex,
        let colon = word[slash...].firstIndex(of: ":")
      else { continue }
      _ = colon
      return String(word)
    }
    return nil
  }
}
