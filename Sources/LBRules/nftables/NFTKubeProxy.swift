import LBCore

/// The parts of a kube-proxy nftables chain or set name:
/// `PREFIX-HASH-namespace/name/protocol/portName` for service chains and
/// `PREFIX-HASH-namespace/name/protocol/portName__endpointIP/endpointPort` for endpoint chains and
/// affinity sets (IPv6 endpoint addresses have their colons turned into dots). See
/// `servicePortChainNameBase` in kubernetes/kubernetes pkg/proxy/nftables/proxier.go.
struct KubeProxyChainName {
  enum Role: Substring {
    case service, local, external, firewall, endpoint, affinity
  }
  var role: Role
  var namespace: Substring
  var name: Substring
  var proto: Substring
  var port: Substring
  /// `10.180.0.1/80` of endpoint chains and affinity sets.
  var endpointPart: Substring?

  init?(_ text: Substring) {
    guard let dash = text.firstIndex(of: "-"), let role = Role(rawValue: text[..<dash]) else { return nil }
    let rest = text[text.index(after: dash)...]
    guard let hashEnd = rest.firstIndex(of: "-") else { return nil }
    var base = rest[rest.index(after: hashEnd)...]
    if let split = base.range(of: "__") {
      endpointPart = base[split.upperBound...]
      base = base[..<split.lowerBound]
    }
    let parts = base.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 4, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
    self.role = role
    namespace = parts[0]
    name = parts[1]
    proto = parts[2]
    port = parts[3]
  }

  /// `namespace/name:portName` as kube-proxy's comments spell a service port
  /// (`namespace/name` when the port has no name).
  var serviceName: String {
    port.isEmpty ? "\(namespace)/\(name)" : "\(namespace)/\(name):\(port)"
  }

  var transport: TransportProtocol? { NFTKubeProxyDecoder.transport(proto) }
}

extension Substring {
  /// The first range of `needle` (no Foundation).
  func range(of needle: String) -> Range<Index>? {
    guard let first = needle.first else { return nil }
    var i = startIndex
    while i < endIndex {
      if self[i] == first, self[i...].hasPrefix(needle) {
        return i..<(index(i, offsetBy: needle.count))
      }
      i = index(after: i)
    }
    return nil
  }
}

/// Gives kube-proxy's meaning to the `kube-proxy` table of an nftables ruleset (both the
/// older layout with per-endpoint chains and `numgen random mod N vmap { … }` and the newer
/// one with `dnat … to numgen random mod N map { … }`).
struct NFTKubeProxyDecoder {
  let table: NFTTable
  let input: Int
  var summary: InputSummary

  init(table: NFTTable, input: Int, summary: InputSummary) {
    self.table = table
    self.input = input
    self.summary = summary
  }

  static func transport(_ text: Substring) -> TransportProtocol? {
    switch text {
    case "tcp": .tcp
    case "udp": .udp
    case "sctp": .sctp
    default: nil
    }
  }

  /// One service port being assembled.
  struct Builder {
    var name: String
    var proto: TransportProtocol
    var frontends: [ServiceFrontend] = []
    var clusterChain: Substring?
    var localChain: Substring?
    var externalChain: Substring?
    var noEndpoints: NoEndpointsAction?
    var noLocalEndpoints: NoEndpointsAction?
    var line: Int

    mutating func add(_ frontend: ServiceFrontend) {
      if let i = frontends.firstIndex(where: { $0.address == frontend.address && $0.port == frontend.port }) {
        // A firewall-ips entry refines an external IP into a load-balancer address.
        if frontend.kind == .loadBalancer { frontends[i].kind = .loadBalancer }
      } else {
        frontends.append(frontend)
      }
    }
  }

  /// Where a chain's selection rule sends new connections.
  struct Selection {
    struct Slot {
      var endpoint: Endpoint?
      var chain: Substring?
    }
    var modulus: Int
    var slots: [Int: Slot] = [:]
    var mode: Substring
  }

  private var builders: [String: Builder] = [:]
  private var order: [String] = []

  private mutating func builder(name: String, proto: TransportProtocol, line: Int) -> String {
    let key = "\(name)|\(proto)"
    if builders[key] == nil {
      builders[key] = Builder(name: name, proto: proto, line: line)
      order.append(key)
    }
    return key
  }

  private mutating func builder(for chain: Substring, line: Int) -> String? {
    guard let parsed = KubeProxyChainName(chain), let proto = parsed.transport else { return nil }
    return builder(name: parsed.serviceName, proto: proto, line: line)
  }

  mutating func decode() -> [ServiceRule] {
    // Service chains first, in file order, so services keep the order the rules give them.
    for chainName in table.chainOrder {
      guard let parsed = KubeProxyChainName(chainName), let chain = table.chains[chainName],
        let key = builder(for: chainName, line: chain.line)
      else { continue }
      switch parsed.role {
      case .service: builders[key]?.clusterChain = chainName
      case .local: builders[key]?.localChain = chainName
      case .external: builders[key]?.externalChain = chainName
      default: break
      }
    }
    let clusterIPs = Set(
      (table.sets["cluster-ips"]?.elements ?? []).compactMap {
        $0.key.first.flatMap { IPAddress(String($0)) }
      })
    frontends(map: "service-ips", clusterIPs: clusterIPs)
    frontends(map: "service-nodeports", clusterIPs: clusterIPs)
    frontends(map: "firewall-ips", clusterIPs: clusterIPs)
    noEndpoints(map: "no-endpoint-services", clusterIPs: clusterIPs)
    noEndpoints(map: "no-endpoint-nodeports", clusterIPs: clusterIPs)
    var services: [ServiceRule] = []
    for key in order {
      if let b = builders[key] { services.append(service(b)) }
    }
    return services
  }

  // MARK: - Frontends

  private mutating func frontends(map: Substring, clusterIPs: Set<IPAddress>) {
    guard let set = table.sets[map] else { return }
    for element in set.elements {
      guard let target = element.verdictTarget else {
        summary.record(
          InputIssue(kind: .unsupported, line: element.line, message: "\(map) element without goto"))
        continue
      }
      guard let parsed = KubeProxyChainName(target), let key = builder(for: target, line: element.line)
      else {
        summary.record(
          InputIssue(
            kind: .unsupported, line: element.line,
            message: "\(map) element points at \(target), not a kube-proxy service chain"))
        continue
      }
      guard let frontend = frontend(element, kind: nil, clusterIPs: clusterIPs, role: parsed.role) else {
        summary.record(
          InputIssue(kind: .malformed, line: element.line, message: "\(map) key is not ADDR . PROTO . PORT"))
        continue
      }
      builders[key]?.add(frontend)
      if table.chains[target] == nil {
        summary.record(
          InputIssue(
            kind: .truncated, line: element.line, message: "chain \(target) is not in the input"))
        summary.partial = true
      }
    }
  }

  /// `ADDR . PROTO . PORT` (service-ips and friends) or `PROTO . PORT` (node ports).
  private func frontend(
    _ element: NFTElement, kind: FrontendKind?, clusterIPs: Set<IPAddress>, role: KubeProxyChainName.Role?
  ) -> ServiceFrontend? {
    let parts = element.keyParts
    if parts.count == 2, let port = UInt16(parts[1]) {
      return ServiceFrontend(address: nil, port: port, kind: .nodePort)
    }
    guard parts.count == 3, let address = IPAddress(String(parts[0])), let port = UInt16(parts[2]) else {
      return nil
    }
    if let kind { return ServiceFrontend(address: address, port: port, kind: kind) }
    let resolved: FrontendKind
    if role == .firewall {
      resolved = .loadBalancer
    } else if clusterIPs.contains(address) || role == .service || role == .local {
      resolved = .clusterIP
    } else {
      resolved = .externalIP
    }
    return ServiceFrontend(address: address, port: port, kind: resolved)
  }

  private mutating func noEndpoints(map: Substring, clusterIPs: Set<IPAddress>) {
    guard let set = table.sets[map] else { return }
    for element in set.elements {
      let parts = element.keyParts
      let proto = parts.count >= 2 ? Self.transport(parts[parts.count - 2]) : nil
      guard let proto,
        let frontend = frontend(element, kind: nil, clusterIPs: clusterIPs, role: nil)
      else {
        summary.record(
          InputIssue(kind: .malformed, line: element.line, message: "\(map) key is not [ADDR .] PROTO . PORT")
        )
        continue
      }
      let action: NoEndpointsAction
      switch element.value.first {
      case "drop": action = .drop
      case "reject": action = .reject
      case "goto", "jump":
        action = chainRejects(element.verdictTarget) ? .reject : .drop
      default:
        summary.record(
          InputIssue(kind: .unsupported, line: element.line, message: "\(map) verdict is not drop or reject"))
        continue
      }
      let key: String
      if let comment = element.comment {
        key = builder(name: comment, proto: proto, line: element.line)
      } else if let found = order.first(where: { k in
        builders[k]?.proto == proto && builders[k]?.frontends.contains(frontend) == true
      }) {
        key = found
      } else {
        key = builder(name: "", proto: proto, line: element.line)
      }
      builders[key]?.add(frontend)
      let hasEndpoints = builders[key]?.clusterChain != nil || builders[key]?.localChain != nil
      // kube-proxy: no endpoints at all → every frontend rejects; endpoints elsewhere but none on
      // this node under policy Local → external frontends drop (internal ones drop under
      // internalTrafficPolicy Local).
      if !hasEndpoints {
        builders[key]?.noEndpoints = action
        if frontend.kind != .clusterIP { builders[key]?.noLocalEndpoints = action }
      } else if frontend.kind == .clusterIP {
        builders[key]?.noEndpoints = action
      } else {
        builders[key]?.noLocalEndpoints = action
      }
    }
  }

  /// Whether a chain's verdict is `reject` (kube-proxy's `reject-chain`).
  private func chainRejects(_ name: Substring?) -> Bool {
    guard let name else { return false }
    if let chain = table.chains[name] {
      return chain.rules.contains { $0.tokens.contains("reject") }
    }
    return name.contains("reject")
  }

  // MARK: - Backends

  /// The endpoint a chain DNATs to (`meta l4proto tcp dnat to 10.0.0.1:80`), with the rule's
  /// counter, and whether it updates an affinity set.
  private func endpointChain(_ name: Substring) -> (
    endpoint: Endpoint?, packets: UInt64?, bytes: UInt64?, hairpin: Bool, line: Int
  )? {
    guard let chain = table.chains[name] else { return nil }
    var endpoint: Endpoint?
    var packets: UInt64?
    var bytes: UInt64?
    var hairpin = false
    var line = chain.line
    for rule in chain.rules {
      let t = rule.tokens
      if let dnat = t.firstIndex(of: "dnat"), let to = t[dnat...].firstIndex(of: "to"), to + 1 < t.count {
        endpoint = Self.endpoint(t[to + 1])
        (packets, bytes) = Self.counter(t)
        line = rule.line
      } else if t.contains("mark-for-masquerade"), t.contains("saddr") {
        hairpin = true
      }
    }
    return (endpoint, packets, bytes, hairpin, line)
  }

  /// `10.0.0.1:80` or `[fd00::1]:80`.
  static func endpoint(_ text: Substring) -> Endpoint? { Endpoint(String(text)) }

  static func counter(_ t: [Substring]) -> (UInt64?, UInt64?) {
    guard let c = t.firstIndex(of: "counter"), c + 4 < t.count, t[c + 1] == "packets", t[c + 3] == "bytes"
    else { return (nil, nil) }
    return (UInt64(t[c + 2]), UInt64(t[c + 4]))
  }

  /// Reads `numgen random mod N vmap { i : goto endpoint-…, … }` and
  /// `dnat [ip|ip6] [addr . port] to numgen random mod N map { i : ADDR . PORT, … }`
  /// (an anonymous map or a named one, `map @name`).
  private mutating func selection(in chain: NFTChain) -> Selection? {
    for rule in chain.rules {
      let t = rule.tokens
      guard let n = t.firstIndex(of: "numgen"), n + 3 < t.count, t[n + 2] == "mod",
        let modulus = Int(t[n + 3]), modulus > 0
      else { continue }
      var selection = Selection(modulus: modulus, mode: t[n + 1])
      var i = n + 4
      if i + 1 < t.count, t[i] == "offset" { i += 2 }
      guard i < t.count, t[i] == "vmap" || t[i] == "map" else {
        summary.record(InputIssue(kind: .unsupported, line: rule.line, message: "numgen without a map"))
        continue
      }
      let isVerdict = t[i] == "vmap"
      var entries: [NFTElement] = []
      if i + 1 < t.count, t[i + 1].hasPrefix("@") {
        entries = table.sets[t[i + 1].dropFirst()]?.elements ?? []
      } else if let (body, _) = NFTSyntax.block(t, from: i) {
        entries = NFTSyntax.splitTopLevel(body).map { part in
          let colon = part.firstIndex(of: ":") ?? part.endIndex
          return NFTElement(
            key: Array(part[..<colon]), value: colon < part.endIndex ? Array(part[(colon + 1)...]) : [],
            line: rule.line)
        }
      }
      for entry in entries {
        guard entry.key.count == 1, let slot = Int(entry.key[0]), slot >= 0, slot < modulus else {
          summary.record(
            InputIssue(kind: .unsupported, line: rule.line, message: "numgen map key is not a slot number"))
          continue
        }
        if isVerdict {
          guard let target = entry.verdictTarget else { continue }
          selection.slots[slot] = Selection.Slot(endpoint: endpoint(ofChain: target), chain: target)
          if table.chains[target] == nil {
            summary.record(
              InputIssue(kind: .truncated, line: rule.line, message: "chain \(target) is not in the input"))
            summary.partial = true
          }
        } else {
          let parts = entry.value.split(separator: ".").map { $0.first ?? "" }
          guard parts.count == 2, let address = IPAddress(String(parts[0])), let port = UInt16(parts[1])
          else {
            summary.record(
              InputIssue(kind: .unsupported, line: rule.line, message: "numgen map value is not ADDR . PORT"))
            continue
          }
          selection.slots[slot] = Selection.Slot(endpoint: Endpoint(address, port), chain: nil)
        }
      }
      return selection
    }
    // Since kubernetes 1.36 a service with one endpoint and no affinity DNATs in its own chain:
    // `meta l4proto tcp dnat to 10.244.1.5:8080`.
    for rule in chain.rules {
      let t = rule.tokens
      guard let dnat = t.firstIndex(of: "dnat"), let to = t[dnat...].firstIndex(of: "to"), to + 1 < t.count,
        let endpoint = Self.endpoint(t[to + 1])
      else { continue }
      var selection = Selection(modulus: 1, mode: "single")
      selection.slots[0] = Selection.Slot(endpoint: endpoint, chain: nil)
      return selection
    }
    return nil
  }

  /// The endpoint an `endpoint-…` chain leads to: its `dnat to` rule, or, when the chain is not
  /// in the input (an elided listing), the `__IP/PORT` end of its name (IPv6 colons were
  /// turned into dots there, and turn back).
  private func endpoint(ofChain name: Substring) -> Endpoint? {
    if let e = endpointChain(name)?.endpoint { return e }
    guard let part = KubeProxyChainName(name)?.endpointPart, let slash = part.lastIndex(of: "/"),
      let port = UInt16(part[part.index(after: slash)...])
    else { return nil }
    let host = String(part[..<slash])
    if let v4 = IPv4Address(host) { return Endpoint(.v4(v4), port) }
    if let v6 = IPv6Address(String(host.map { $0 == "." ? ":" : $0 })) { return Endpoint(.v6(v6), port) }
    return nil
  }

  /// `ip saddr @affinity-… goto endpoint-…` rules of a service chain.
  private func affinityRules(in chain: NFTChain) -> [(set: Substring, chain: Substring, line: Int)] {
    chain.rules.compactMap { rule in
      let t = rule.tokens
      guard let set = t.first(where: { $0.hasPrefix("@affinity-") }),
        let go = t.firstIndex(where: { $0 == "goto" || $0 == "jump" }), go + 1 < t.count
      else { return nil }
      return (set.dropFirst(), t[go + 1], rule.line)
    }
  }

  // MARK: - Assembly

  private mutating func service(_ b: Builder) -> ServiceRule {
    var rule = ServiceRule(
      name: b.name.isEmpty ? nil : b.name, proto: b.proto, frontends: b.frontends.sorted(),
      noEndpoints: b.noEndpoints, noLocalEndpoints: b.noLocalEndpoints, source: .nft,
      chain: b.clusterChain.map(String.init) ?? b.localChain.map(String.init),
      location: SourceLocation(input: input, line: b.line))

    let clusterChain = b.clusterChain.flatMap { table.chains[$0] }
    let localChain = b.localChain.flatMap { table.chains[$0] }
    let externalChain = b.externalChain.flatMap { table.chains[$0] }
    let cluster = clusterChain.flatMap { selection(in: $0) }
    let local = localChain.flatMap { selection(in: $0) }

    // Which chain cluster-IP traffic takes: service-… unless internalTrafficPolicy Local sends
    // the cluster IP to local-….
    let internalSelection = cluster ?? local
    var backends: [BackendRule] = []
    var index: [Endpoint: Int] = [:]
    func addSlots(_ selection: Selection) {
      for slot in selection.slots.keys.sorted() {
        guard let s = selection.slots[slot] else { continue }
        guard let endpoint = s.endpoint else { continue }
        if index[endpoint] == nil {
          index[endpoint] = backends.count
          var backend = BackendRule(
            endpoint: endpoint, chain: s.chain.map(String.init),
            location: SourceLocation(input: input, line: rule.location.line))
          if let chainName = s.chain, let info = endpointChain(chainName) {
            backend.observedPackets = nil
            backend.observedConnections = info.packets
            backend.observedBytes = info.bytes
            backend.location = SourceLocation(input: input, line: info.line)
            if info.hairpin { rule.masquerade.insert(.hairpin) }
          }
          backends.append(backend)
        }
      }
    }
    if let internalSelection { addSlots(internalSelection) }
    if let local { addSlots(local) }
    func shares(_ selection: Selection?) -> [Endpoint: Double] {
      guard let selection else { return [:] }
      var result: [Endpoint: Double] = [:]
      for (_, slot) in selection.slots {
        if let e = slot.endpoint { result[e, default: 0] += 1.0 / Double(selection.modulus) }
      }
      return result
    }
    for selection in [internalSelection, local].compactMap({ $0 })
    where selection.slots.count < selection.modulus {
      summary.notes.append(
        "\(b.name): numgen mod \(selection.modulus) maps only \(selection.slots.count) slots; the rest fall through"
      )
    }
    let internalShares = shares(internalSelection)
    let localShares = shares(local)

    // Traffic policy from the external chain: `goto local-…` (or the short-circuit rules
    // kube-proxy writes only for policy Local) means Local.
    var policy: TrafficPolicy?
    if let externalChain {
      let tokens = externalChain.rules.map(\.tokens)
      let goesLocal = tokens.contains { t in t.contains { $0.hasPrefix("local-") } }
      let shortCircuits = tokens.contains { t in t.contains("fib") && t.contains("saddr") }
      let masqueradesAll = tokens.contains { t in
        t.count == 2 && t[0] == "jump" && t[1] == "mark-for-masquerade"
      }
      if goesLocal || shortCircuits || b.noLocalEndpoints != nil {
        policy = .local
      } else {
        policy = .cluster
      }
      if masqueradesAll { rule.masquerade.insert(.externalPolicyCluster) }
    } else if b.noLocalEndpoints != nil {
      policy = .local
    }
    rule.externalTrafficPolicy = policy
    if let clusterChain {
      for r in clusterChain.rules where r.tokens.contains("mark-for-masquerade") {
        let t = r.tokens
        if let s = t.firstIndex(of: "saddr"), s + 1 < t.count, t[s + 1] == "!=" {
          rule.masquerade.insert(.clusterIPFromOutsideCluster)
        } else if t.contains("daddr") {
          rule.masquerade.insert(.clusterIPAll)
        }
      }
    }

    let hasExternal = rule.frontends.contains { $0.kind != .clusterIP }
    for i in backends.indices {
      let endpoint = backends[i].endpoint
      if internalSelection != nil { backends[i].expectedShare = internalShares[endpoint] ?? 0 }
      if local != nil { backends[i].isLocal = localShares[endpoint] != nil }
      guard hasExternal else { continue }
      switch policy {
      case .local:
        backends[i].expectedShareExternal = local != nil ? (localShares[endpoint] ?? 0) : 0
        if local == nil { backends[i].isLocal = false }
      case .cluster, nil:
        backends[i].expectedShareExternal = backends[i].expectedShare
      }
    }
    rule.backends = backends

    // Affinity: the sets named by the service chain's `ip saddr @affinity-…` rules, and their
    // elements: the clients pinned right now.
    var pins: [PinnedClient] = []
    var timeout: Double?
    let affinity = [clusterChain, localChain].compactMap { $0 }.flatMap { affinityRules(in: $0) }
    var seenSets = Set<Substring>()
    for a in affinity where seenSets.insert(a.set).inserted {
      guard let set = table.sets[a.set] else {
        summary.record(
          InputIssue(kind: .truncated, line: a.line, message: "set \(a.set) is not in the input"))
        summary.partial = true
        continue
      }
      if let t = set.timeoutSeconds { timeout = max(timeout ?? 0, t) }
      let backend = endpoint(ofChain: a.chain)
      for element in set.elements {
        guard let first = element.key.first, element.key.count == 1, let client = IPAddress(String(first))
        else {
          summary.record(
            InputIssue(kind: .malformed, line: element.line, message: "affinity element is not an address"))
          continue
        }
        let elementTimeout = element.timeoutSeconds ?? set.timeoutSeconds
        var age: Double?
        if let elementTimeout, let expires = element.expiresSeconds { age = max(0, elementTimeout - expires) }
        pins.append(
          PinnedClient(
            client: client, backend: backend, lastSeenAgeSeconds: age,
            expiresInSeconds: element.expiresSeconds,
            source: .nft, list: String(a.set), location: SourceLocation(input: input, line: element.line)))
      }
    }
    if !affinity.isEmpty {
      rule.affinity = AffinityRule(timeoutSeconds: timeout.map { Int($0.rounded()) }, source: .nft)
      rule.pinnedClients = pins.sorted { ($0.client, $0.list ?? "") < ($1.client, $1.list ?? "") }
    }
    if backends.contains(where: { $0.observedConnections != nil }) {
      rule.observedCounterSource = "nft endpoint-chain dnat rule counters"
    }
    return rule
  }
}
