import LBCore

extension IptablesServices {
  /// What the filter table says about a named service: no endpoints at all, none on this node,
  /// a health-check node port (only services with policy Local have one).
  struct FilterFacts {
    var frontends: [ServiceFrontend] = []
    var proto: TransportProtocol?
    var noEndpoints: NoEndpointsAction?
    var noLocalEndpoints: NoEndpointsAction?
    var healthCheck = false
    var line: Int
  }

  func filterFacts() -> [String: FilterFacts] {
    var facts: [String: FilterFacts] = [:]
    for rule in dump.rules {
      guard let comment = rule.comment, let name = Self.serviceName(comment) else { continue }
      let action: NoEndpointsAction?
      switch rule.target {
      case .drop: action = .drop
      case .reject: action = .reject
      case .jump(let t) where dropChains.contains(t): action = .drop
      default: action = nil
      }
      let local = comment.hasSuffix("has no local endpoints")
      let none = comment.hasSuffix("has no endpoints")
      let health = comment.hasSuffix("health check node port")
      guard (action != nil && (local || none)) || health else { continue }
      var f = facts[name] ?? FilterFacts(line: rule.line)
      if health {
        f.healthCheck = true
      } else if local {
        f.noLocalEndpoints = action
      } else {
        f.noEndpoints = action
        let host = rule.destination.flatMap { $0.isHost ? $0.address : nil }
        if let port = rule.destinationPort?.single {
          // kube-proxy rejects cluster IPs in filter KUBE-SERVICES and external IPs, load
          // balancer IPs and node ports in KUBE-EXTERNAL-SERVICES; other chains: first wins.
          let chain = chainName(rule.chain)
          let kind: FrontendKind =
            host == nil
            ? .nodePort
            : chain == "KUBE-EXTERNAL-SERVICES"
              ? .externalIP : (chain == "KUBE-SERVICES" || f.frontends.isEmpty ? .clusterIP : .externalIP)
          f.frontends.append(ServiceFrontend(address: host, port: port, kind: kind))
        }
        f.proto = f.proto ?? rule.proto
      }
      facts[name] = f
    }
    return facts
  }

  /// The services of the dump, sorted by name (unnamed last), then first frontend.
  public func services() -> [ServiceRule] {
    let (links, masqByFrontend) = frontendLinks()

    // Group cascades that are one service: they share endpoint chains (KUBE-SVC and its
    // KUBE-SVL / KUBE-XLB), or one frontend reaches both.
    var parent: [Int: Int] = [:]
    func find(_ x: Int) -> Int {
      var x = x
      while let p = parent[x], p != x { x = p }
      return x
    }
    func union(_ a: Int, _ b: Int) {
      let (ra, rb) = (find(a), find(b))
      if ra != rb { parent[max(ra, rb)] = min(ra, rb) }
    }
    let balancing = cascades.keys.sorted()
    for c in balancing { parent[c] = c }
    var owner: [Int: Int] = [:]  // endpoint chain -> first cascade
    for c in balancing {
      for entry in cascades[c]?.entries ?? [] {
        if let o = owner[entry.endpointChain] { union(o, c) } else { owner[entry.endpointChain] = c }
      }
    }
    var directEndpoints: [Int] = []  // endpoint chains a frontend jumps to directly
    // Endpoint chains no cascade reaches (excerpts without the service chain) are services of
    // their own.
    // One service per name among them.
    var orphanByName: [String: Int] = [:]
    for e in endpoints.keys.sorted() where owner[e] == nil && !dump.chains[e].rules.isEmpty {
      parent[e] = e
      let dnat = dump.rules[endpoints[e]?.dnatRule ?? 0]
      if let name = dnat.comment.flatMap(Self.serviceName) {
        if let first = orphanByName[name] { union(first, e) } else { orphanByName[name] = e }
      }
    }
    for link in links {
      for c in [link.cascade].compactMap({ $0 }) + link.conditional where cascades[c] == nil {
        if parent[c] == nil {
          parent[c] = c
          directEndpoints.append(c)
        }
      }
      let reached = [link.cascade].compactMap { $0 } + link.conditional
      for pair in zip(reached, reached.dropFirst()) { union(pair.0, pair.1) }
    }

    // Cascades and endpoint chains that carry the same service name are one service (an
    // excerpt or a cut dump may have lost the rules that link them).
    var byName: [String: Int] = [:]
    for c in parent.keys.sorted() {
      guard
        let name = dump.chains[c].rules.lazy.compactMap({
          self.dump.rules[$0].comment.flatMap(Self.serviceName)
        }).first
      else { continue }
      if let first = byName[name] { union(first, c) } else { byName[name] = c }
    }

    var groups: [Int: [Int]] = [:]
    for c in parent.keys.sorted() { groups[find(c), default: []].append(c) }
    var linksByGroup: [Int: [FrontendLink]] = [:]
    var orphanLinks: [FrontendLink] = []
    for link in links {
      if let c = link.cascade ?? link.conditional.first, parent[c] != nil {
        linksByGroup[find(c), default: []].append(link)
      } else {
        orphanLinks.append(link)
      }
    }

    let facts = filterFacts()
    var usedFacts = Set<String>()
    var services: [ServiceRule] = []
    for (root, members) in groups.sorted(by: { $0.key < $1.key }) {
      var service = assemble(members: members, links: linksByGroup[root] ?? [], masq: masqByFrontend)
      if let name = service.name, let f = facts[name] {
        usedFacts.insert(name)
        apply(f, to: &service)
      }
      services.append(service)
    }
    // Frontends whose path ends without a cascade (policy Local without local endpoints,
    // services whose chains the excerpt lacks), and services the filter table says have no
    // endpoints at all.
    var orphans: [String: ServiceRule] = [:]
    var unnamed: [ServiceRule] = []
    for link in orphanLinks {
      var service =
        link.name.flatMap { orphans[$0] }
        ?? ServiceRule(
          name: link.name, proto: link.proto ?? .tcp, source: .iptables,
          location: SourceLocation(input: input, line: link.line))
      add(link, to: &service, clusterCascade: nil, masq: masqByFrontend)
      if let name = link.name { orphans[name] = service } else { unnamed.append(service) }
    }
    for (name, f) in facts where !usedFacts.contains(name) {
      var service =
        orphans[name]
        ?? ServiceRule(
          name: name, proto: f.proto ?? .tcp, source: .iptables,
          location: SourceLocation(input: input, line: f.line))
      apply(f, to: &service)
      orphans[name] = service
    }
    for (name, var service) in orphans {
      if let i = services.firstIndex(where: { $0.name == name }) {
        // The same name as a balanced service: merge the extra frontends into it.
        for f in service.frontends where !services[i].frontends.contains(f) {
          services[i].frontends.append(f)
        }
        services[i].frontends.sort()
        continue
      }
      service.frontends.sort()
      services.append(service)
    }
    services += unnamed
    return services.sorted(by: Self.order)
  }

  static func order(_ a: ServiceRule, _ b: ServiceRule) -> Bool {
    switch (a.name, b.name) {
    case (let x?, let y?) where x != y: return x < y
    case (_?, nil): return true
    case (nil, _?): return false
    default:
      switch (a.frontends.first, b.frontends.first) {
      case (let x?, let y?) where x != y: return x < y
      case (_?, nil): return true
      case (nil, _?): return false
      default: return (a.chain ?? "") < (b.chain ?? "")
      }
    }
  }

  func apply(_ f: FilterFacts, to service: inout ServiceRule) {
    for frontend in f.frontends where !service.frontends.contains(frontend) {
      service.frontends.append(frontend)
    }
    service.frontends.sort()
    if let none = f.noEndpoints { service.noEndpoints = none }
    // A frontend path that reaches the cluster cascade from outside says Cluster; that wins
    // over a "has no local endpoints" rule of the same name (annotated mixes of shapes).
    if let local = f.noLocalEndpoints, service.externalTrafficPolicy != .cluster {
      service.noLocalEndpoints = local
      service.externalTrafficPolicy = .local
      for i in service.backends.indices {
        service.backends[i].isLocal = false
        service.backends[i].expectedShareExternal = 0
      }
    }
    if f.healthCheck && service.externalTrafficPolicy == nil { service.externalTrafficPolicy = .local }
    // Policy Local and no endpoints at all: external traffic meets the "has no endpoints" rule,
    // so that is what happens to it on this node too.
    if service.externalTrafficPolicy == .local, service.backends.isEmpty, service.noLocalEndpoints == nil {
      service.noLocalEndpoints = service.noEndpoints
    }
  }

  /// One service from a group of cascades and the frontends that reach them.
  func assemble(members: [Int], links: [FrontendLink], masq: [FrontendKey: Set<MasqueradeReason>])
    -> ServiceRule
  {
    func size(_ c: Int) -> Int { cascades[c]?.entries.count ?? 1 }
    // The cluster cascade: the one a cluster-IP frontend jumps to; else the largest.
    let clusterTargets = Set(links.filter { !$0.external }.compactMap(\.cascade))
    let cluster =
      members.first { clusterTargets.contains($0) }
      ?? members.max { a, b in
        size(a) != size(b)
          ? size(a) < size(b)
          : (chainName(a).hasPrefix("KUBE-SVC-") ? 0 : 1) > (chainName(b).hasPrefix("KUBE-SVC-") ? 0 : 1)
            || a > b
      } ?? members[0]
    let entries = entriesOf(cluster)
    // Endpoint chains without a cascade (excerpts) say nothing about chances.
    let balanced = cascades[cluster] != nil || links.contains { $0.cascade == cluster }
    let shares: [Double?] =
      balanced
      ? ProbabilityCascade.shares(entries.map { dump.rules[$0.rule].probability }) : entries.map { _ in nil }
    var service = ServiceRule(
      name: nil, proto: .tcp, source: .iptables, chain: chainName(cluster),
      location: SourceLocation(input: input, line: dump.chains[cluster].line))
    var names: [String: Int] = [:]
    var proto: TransportProtocol?
    var counted = false
    for (k, entry) in entries.enumerated() {
      guard let ep = endpoints[entry.endpointChain] else { continue }
      let rule = dump.rules[entry.rule]
      let dnat = dump.rules[ep.dnatRule]
      if let name = rule.comment.flatMap(Self.serviceName) ?? dnat.comment.flatMap(Self.serviceName) {
        names[name, default: 0] += 1
      }
      proto = proto ?? dnat.proto
      guard let endpoint = ep.endpoint else { continue }
      var backend = BackendRule(
        endpoint: endpoint, expectedShare: shares[k], probability: rule.probability,
        chain: chainName(entry.endpointChain), location: SourceLocation(input: input, line: dnat.line))
      backend.affinityList = ep.affinityList
      if dump.chains[dnat.chain].table == "nat", let packets = dnat.packets {
        backend.observedConnections = packets
        counted = true
      }
      if ep.hairpin { service.masquerade.insert(.hairpin) }
      service.backends.append(backend)
    }
    if counted {
      service.observedCounterSource = "iptables nat DNAT rule packet counters (one per new connection)"
    }
    for c in members {
      if let seconds = cascades[c]?.affinitySeconds {
        service.affinity = AffinityRule(timeoutSeconds: seconds, source: .iptables)
        break
      }
    }
    // Endpoints only the local cascades know (should not happen with kube-proxy, but an
    // excerpt may show only part of the cluster cascade).
    for c in members where c != cluster {
      for entry in entriesOf(c) {
        guard let endpoint = endpoints[entry.endpointChain]?.endpoint,
          !service.backends.contains(where: { $0.endpoint == endpoint })
        else { continue }
        let dnat = dump.rules[endpoints[entry.endpointChain]?.dnatRule ?? entry.rule]
        var backend = BackendRule(
          endpoint: endpoint, chain: chainName(entry.endpointChain),
          location: SourceLocation(input: input, line: dnat.line))
        backend.affinityList = endpoints[entry.endpointChain]?.affinityList
        if dump.chains[dnat.chain].table == "nat", let packets = dnat.packets {
          backend.observedConnections = packets
        }
        service.backends.append(backend)
      }
    }
    for link in links {
      if let name = link.name { names[name, default: 0] += 1 }
      proto = proto ?? link.proto
    }
    service.name = names.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }?.key
    service.proto = proto ?? .tcp
    // Masquerade rules inside the cluster cascade (newer kube-proxy puts the cluster-IP
    // `! -s CLUSTER_CIDR -j KUBE-MARK-MASQ` there).
    for r in dump.chains[cluster].rules where isMasquerade(dump.rules[r]) {
      let rule = dump.rules[r]
      if rule.sourceNegated {
        service.masquerade.insert(.clusterIPFromOutsideCluster)
      } else if rule.source == nil {
        service.masquerade.insert(.clusterIPAll)
      }
    }
    for link in links { add(link, to: &service, clusterCascade: cluster, masq: masq) }
    service.frontends.sort()
    return service
  }

  /// The cascade entries of a chain; an endpoint chain a frontend jumps to directly is its own
  /// one-entry cascade.
  func entriesOf(_ chain: Int) -> [(rule: Int, endpointChain: Int)] {
    if let c = cascades[chain] { return c.entries }
    if let e = endpoints[chain] { return [(e.dnatRule, chain)] }
    return []
  }

  /// Adds a frontend, and what its path says about policy and masquerade, to a service.
  func add(
    _ link: FrontendLink, to service: inout ServiceRule, clusterCascade: Int?,
    masq: [FrontendKey: Set<MasqueradeReason>]
  ) {
    if !service.frontends.contains(link.frontend) { service.frontends.append(link.frontend) }
    for (key, reasons) in masq
    where key.port == link.frontend.port && key.address == link.frontend.address
      && (key.proto == nil || link.proto == nil || key.proto == link.proto)
    {
      service.masquerade.formUnion(reasons)
    }
    guard link.external else { return }
    if link.masquerade { service.masquerade.insert(.externalPolicyCluster) }
    if let cascade = link.cascade, cascade == clusterCascade {
      if service.externalTrafficPolicy == nil { service.externalTrafficPolicy = .cluster }
      for i in service.backends.indices where service.backends[i].expectedShareExternal == nil {
        service.backends[i].expectedShareExternal = service.backends[i].expectedShare
      }
    } else if let cascade = link.cascade {
      // A cascade of this node's endpoints only: policy Local.
      service.externalTrafficPolicy = .local
      let local = entriesOf(cascade)
      let shares = ProbabilityCascade.shares(local.map { dump.rules[$0.rule].probability })
      var localShare: [Endpoint: Double] = [:]
      for (k, entry) in local.enumerated() {
        if let e = endpoints[entry.endpointChain]?.endpoint { localShare[e, default: 0] += shares[k] }
      }
      for i in service.backends.indices {
        let e = service.backends[i].endpoint
        service.backends[i].isLocal = localShare[e] != nil
        service.backends[i].expectedShareExternal = localShare[e] ?? 0
      }
    } else if link.drop != nil || !link.conditional.isEmpty {
      // The external path reaches no endpoint, though pods or the node itself reach the
      // cluster cascade: policy Local on a node without local endpoints (dropped here, or by
      // the filter table's "has no local endpoints" rule). A path into chains the dump does
      // not have says nothing.
      service.externalTrafficPolicy = .local
      if let drop = link.drop { service.noLocalEndpoints = drop }
      for i in service.backends.indices {
        service.backends[i].isLocal = false
        service.backends[i].expectedShareExternal = 0
      }
    }
  }
}
