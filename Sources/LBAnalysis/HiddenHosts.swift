import LBCore

extension AnalysisResult {
  /// Adds packet evidence of hidden hosts: fills `estimatedHosts` and `evidence` of translated
  /// sources, adds an entry for an address that the evidence shows stands for several hosts
  /// although this node saw only that address (SNAT upstream, e.g. a NAT gateway), and a
  /// `sources-collapsed-by-snat` finding for those addresses.
  public mutating func addHostEstimates(
    _ estimates: [HostEstimate], options: AnalysisOptions = AnalysisOptions()
  ) {
    var byAddress: [IPAddress: HostEstimate] = [:]
    for e in estimates { byAddress[e.address] = e }
    var covered = Set<IPAddress>()
    for i in translatedSources.indices {
      guard let e = byAddress[translatedSources[i].address] else { continue }
      covered.insert(e.address)
      // The original sources seen before this node's SNAT are hosts too: packets after the SNAT
      // all carry the node's own stack, so their evidence alone would say one host.
      translatedSources[i].estimatedHosts = max(e.estimatedHosts, translatedSources[i].originalSourceCount)
      translatedSources[i].evidence = e.evidence
      if translatedSources[i].originalSourceCount > e.estimatedHosts {
        translatedSources[i].evidence.insert(
          "\(translatedSources[i].originalSourceCount) original source addresses seen before the SNAT", at: 0)
      }
    }
    // Connections per client address, from the services (the analysis's own count).
    var clientConnections: [IPAddress: Int] = [:]
    for service in services {
      for client in service.clients { clientConnections[client.address, default: 0] += client.connections }
    }
    var hidden: [HostEstimate] = []
    for e in estimates where e.estimatedHosts >= 2 && !covered.contains(e.address) {
      hidden.append(e)
      translatedSources.append(
        TranslatedSourceResult(
          address: e.address, originalSourceCount: 1, originalSourceCountIsLowerBound: false,
          connections: clientConnections[e.address] ?? e.connections, estimatedHosts: e.estimatedHosts,
          exampleSources: [], evidence: e.evidence))
    }
    translatedSources.sort { $0.address < $1.address }
    let hosts = hidden.reduce(0) { $0 + $1.estimatedHosts }
    guard !hidden.isEmpty, hosts >= options.snatCollapseMinimum else { return }
    let list = hidden.map { "\($0.address) (≥ \($0.estimatedHosts))" }.joined(separator: ", ")
    var evidence = ["\(hidden.count) address(es) stand for at least \(hosts) hosts: \(list)"]
    for e in hidden { evidence += e.evidence.map { "\(e.address): \($0)" } }
    findings.append(
      Finding(
        code: "sources-collapsed-by-snat", severity: .warning, service: nil,
        summary:
          "\(hidden.count) source address(es) arriving at this node stand for at least \(hosts) hosts (SNAT before this node, e.g. a NAT gateway or proxy), so ClientIP affinity, rate limits and logs treat each group of hosts as one client",
        evidence: evidence,
        remediation:
          "balance on something other than the source address (a cookie or header at an ingress), or keep the hosts' addresses (no SNAT on the gateway, or the PROXY protocol / X-Forwarded-For at an L7 proxy)"
      ))
    findings.sort { lhs, rhs in
      (lhs.severity.rank, lhs.code, lhs.service ?? "") < (rhs.severity.rank, rhs.code, rhs.service ?? "")
    }
  }

  /// Attaches affinity cookies to the services whose frontends they were sent to.
  public mutating func addCookieAffinity(_ cookies: [CookieAffinityObservation]) {
    for i in services.indices {
      let mine = cookies.filter {
        services[i].frontends.contains($0.frontend) && services[i].proto == $0.proto
      }
      services[i].cookieAffinity = mine
    }
  }
}
