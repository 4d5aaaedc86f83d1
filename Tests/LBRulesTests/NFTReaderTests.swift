import LBCore
import LBRules
import Testing

private typealias S = DatapathTestSupport

private func readNFT(_ name: String) throws -> ([ServiceRule], InputSummary) {
  let r = try NFTRulesReader.read(path: S.corpusFile("nft", name), input: 0)
  return (r.services, r.summary)
}

/// Reads `text` as a file; `complete` adds the line end tools always print last.
private func readNFTText(_ text: String, complete: Bool = true) throws -> ([ServiceRule], InputSummary) {
  try S.withTemporaryFile(complete && !text.hasSuffix("\n") ? text + "\n" : text) { path in
    let r = try NFTRulesReader.read(path: path, input: 0)
    return (r.services, r.summary)
  }
}

private func ep(_ text: String) -> Endpoint? { Endpoint(text) }

@Test func everyNFTCorpusFileIsReadWithoutACrash() throws {
  let files = S.files(in: "nft")
  #expect(files.count == 5)
  for path in files {
    let (services, summary) = try NFTRulesReader.read(path: path, input: 0)
    #expect(!services.isEmpty, "\(path)")
    let marked = ["FRAGMENT", "ELIDED", "PARTIAL"].contains { path.contains($0) }
    if path.contains("ELIDED") { #expect(summary.partial && summary.truncated > 0, "\(path)") }
    if !marked { #expect(summary.issueCount == 0, "\(path): \(summary.examples)") }
  }
}

@Test func k3sListingGivesElevenServicesWithNumgenShares() throws {
  let (services, summary) = try readNFT("k3s-notes_nft-list-table-ip-kube-proxy_nftables-mode_full.nft.txt")
  #expect(summary.issueCount == 0)
  #expect(services.count == 11)
  let hello = try #require(S.service(services, "riset/hellopod-np-svc"))
  #expect(hello.backends.count == 9)
  for b in hello.backends { #expect(abs((b.expectedShare ?? 0) - 1.0 / 9) < 1e-12) }
  #expect(hello.backends.first?.endpoint == ep("10.42.2.218:8080"))
  #expect(hello.backends.last?.endpoint == ep("10.42.5.164:8080"))
  #expect(hello.frontends.map(\.description) == ["10.43.195.72:8000", "*:30000"])
  #expect(hello.frontends.map(\.kind) == [.clusterIP, .nodePort])
  #expect(hello.externalTrafficPolicy == .cluster)
  #expect(hello.masquerade == [.clusterIPFromOutsideCluster, .externalPolicyCluster, .hairpin])
  #expect(hello.backends.allSatisfy { $0.expectedShareExternal == $0.expectedShare })
  #expect(hello.chain == "service-P6J77WGM-riset/hellopod-np-svc/tcp/")

  let dns = try #require(S.service(services, "kube-system/kube-dns:dns", .udp))
  #expect(dns.backends.map(\.endpoint) == [ep("10.42.0.171:53")].compactMap { $0 })
  #expect(dns.backends.first?.expectedShare == 1)
  #expect(dns.externalTrafficPolicy == nil)

  let otel = try #require(S.service(services, "riset/otelcol-opentelemetry-collector:otlp"))
  #expect(otel.backends.isEmpty)
  #expect(otel.noEndpoints == .reject)
  #expect(otel.frontends.map(\.description) == ["10.43.21.102:4317"])
}

@Test func kubeProxyTransactionGivesPolicyFirewallAffinityAndRejects() throws {
  let (services, summary) = try readNFT(
    "k8s-unittest_TestOverallNFTablesRules_nft-f-transaction_affinity-firewall.nft")
  #expect(summary.issueCount == 0)
  #expect(
    services.map(\.name) == [
      "ns1/svc1:p80", "ns2/svc2:p80", "ns3/svc3:p80", "ns4/svc4:p80", "ns5/svc5:p80", "ns6/svc6:p80",
    ])
  let svc2 = try #require(S.service(services, "ns2/svc2:p80"))
  #expect(svc2.externalTrafficPolicy == .local)
  #expect(svc2.noLocalEndpoints == .drop)
  #expect(svc2.backends.first?.expectedShare == 1)
  #expect(svc2.backends.first?.expectedShareExternal == 0)
  #expect(svc2.backends.first?.isLocal == false)
  #expect(
    svc2.frontends.contains(ServiceFrontend(address: IPAddress("1.2.3.4"), port: 80, kind: .externalIP)))
  #expect(svc2.frontends.contains(ServiceFrontend(address: nil, port: 3001, kind: .nodePort)))
  #expect(!svc2.masquerade.contains(.externalPolicyCluster))

  let svc4 = try #require(S.service(services, "ns4/svc4:p80"))
  #expect(svc4.backends.map(\.expectedShare) == [0.5, 0.5])
  #expect(svc4.backends.map(\.endpoint.description) == ["10.180.0.4:80", "10.180.0.5:80"])
  #expect(svc4.externalTrafficPolicy == .cluster)

  let svc5 = try #require(S.service(services, "ns5/svc5:p80"))
  #expect(svc5.affinity?.timeoutSeconds == 10800)
  #expect(svc5.affinity?.source == .nft)
  #expect(svc5.pinnedClients.isEmpty)
  #expect(svc5.frontends.first { $0.address == IPAddress("5.6.7.8") }?.kind == .loadBalancer)

  let svc6 = try #require(S.service(services, "ns6/svc6:p80"))
  #expect(svc6.noEndpoints == .reject)
  #expect(svc6.backends.isEmpty)
}

@Test func elidedListingCountsMissingChainsAndKeepsWhatItShows() throws {
  let (services, summary) = try readNFT(
    "gce-kubeadm-notes_nft-a-list-table-kube-proxy_handles_ELIDED-TAIL.nft.txt")
  #expect(summary.partial)
  #expect(summary.unsupported == 1)  // the author's "...." line
  #expect(summary.truncated == 14)  // 1 unclosed table + 10 service-ips chains + 3 endpoint chains
  #expect(services.count == 9)
  let http = try #require(S.service(services, "home/http-server:mainhttp"))
  // Three endpoint chains are elided; their endpoints come from the chain names.
  #expect(
    http.backends.map(\.endpoint.description) == [
      "10.244.1.71:8000", "10.244.1.72:8000", "10.244.1.73:8000", "10.244.1.76:8000",
    ])
  #expect(http.backends.allSatisfy { $0.expectedShare == 0.25 })
  let api = try #require(S.service(services, "default/kubernetes:https"))
  #expect(api.backends.map(\.endpoint.description) == ["10.128.0.16:6443"])
}

@Test func iptablesNFTFragmentDecodesSvcAndSepChains() throws {
  let (services, summary) = try readNFT(
    "calico-issue8025_nft-list-ruleset_iptables-nft-KUBE-chains_FRAGMENT.nft.txt")
  #expect(summary.unsupported == 1)  // the CNI hostport chain
  #expect(services.count == 2)
  let dns = try #require(services.first { $0.proto == .udp })
  #expect(dns.frontends.map(\.description) == ["10.43.0.10:53"])
  #expect(dns.backends.map(\.endpoint.description) == ["10.42.0.7:53"])
  #expect(dns.backends.first?.observedConnections == 0)
  #expect(dns.observedCounterSource != nil)
  let (two, twoSummary) = try readNFT(
    "saifsust-DevOps_nft-list_iptables-nft-KUBE-SERVICES_two-nodes_counters.nft.txt")
  #expect(twoSummary.issueCount == 0)
  #expect(
    two.map(\.frontends.first?.description) == [
      "10.96.0.1:443", "10.96.0.10:53", "10.96.0.10:53", "10.96.0.10:9153",
    ])
}

@Test func duplicateSlotsGiveUnequalShares() throws {
  let text = """
    table ip kube-proxy {
      map service-ips {
        type ipv4_addr . inet_proto . inet_service : verdict
        elements = { 10.96.0.1 . tcp . 80 : goto service-AAAAAAAA-ns/web/tcp/http }
      }
      chain service-AAAAAAAA-ns/web/tcp/http {
        meta l4proto tcp dnat ip addr . port to numgen random mod 3 map { 0 : 10.1.0.1 . 8080, 1 : 10.1.0.2 . 8080, 2 : 10.1.0.1 . 8080 }
      }
    }
    """
  let (services, summary) = try readNFTText(text)
  #expect(summary.issueCount == 0)
  let web = try #require(S.service(services, "ns/web:http"))
  #expect(web.backends.map(\.endpoint.description) == ["10.1.0.1:8080", "10.1.0.2:8080"])
  #expect(abs((web.backends[0].expectedShare ?? 0) - 2.0 / 3) < 1e-12)
  #expect(abs((web.backends[1].expectedShare ?? 0) - 1.0 / 3) < 1e-12)
}

@Test func newerLayoutSingleEndpointAndIPv6Table() throws {
  let text = """
    add table ip6 kube-proxy
    add chain ip6 kube-proxy service-BBBBBBBB-ns/v6/tcp/p80
    add rule ip6 kube-proxy service-BBBBBBBB-ns/v6/tcp/p80 ip6 daddr fd00::10 tcp dport 80 ip6 saddr != fd00:10::/64 jump mark-for-masquerade
    add rule ip6 kube-proxy service-BBBBBBBB-ns/v6/tcp/p80 meta l4proto tcp dnat to [fd00:10::5]:8080
    add element ip6 kube-proxy service-ips { fd00::10 . tcp . 80 : goto service-BBBBBBBB-ns/v6/tcp/p80 }
    """
  let (services, summary) = try readNFTText(text)
  #expect(summary.issueCount == 0)
  let v6 = try #require(S.service(services, "ns/v6:p80"))
  #expect(v6.frontends.map(\.description) == ["[fd00::10]:80"])
  #expect(v6.backends.map(\.endpoint.description) == ["[fd00:10::5]:8080"])
  #expect(v6.backends.first?.expectedShare == 1)
  #expect(v6.masquerade == [.clusterIPFromOutsideCluster])
}

@Test func affinitySetElementsArePinnedClientsWithExpiry() throws {
  let text = """
    table ip kube-proxy {
    \tset affinity-CCCCCCCC-ns/app/tcp/http__10.1.0.1/8080 {
    \t\ttype ipv4_addr
    \t\tflags dynamic,timeout
    \t\ttimeout 3h
    \t\telements = { 192.168.5.10 expires 2h59m12s500ms, 192.168.5.11 timeout 3h expires 1h,
    \t\t\t     192.168.5.12 expires 10s }
    \t}
    \tchain service-DDDDDDDD-ns/app/tcp/http {
    \t\tip saddr @affinity-CCCCCCCC-ns/app/tcp/http__10.1.0.1/8080 goto endpoint-CCCCCCCC-ns/app/tcp/http__10.1.0.1/8080
    \t\tnumgen random mod 1 vmap { 0 : goto endpoint-CCCCCCCC-ns/app/tcp/http__10.1.0.1/8080 }
    \t}
    \tchain endpoint-CCCCCCCC-ns/app/tcp/http__10.1.0.1/8080 {
    \t\tupdate @affinity-CCCCCCCC-ns/app/tcp/http__10.1.0.1/8080 { ip saddr }
    \t\tmeta l4proto tcp counter packets 42 bytes 2520 dnat to 10.1.0.1:8080
    \t}
    }
    """
  let (services, summary) = try readNFTText(text)
  #expect(summary.issueCount == 0)
  let app = try #require(S.service(services, "ns/app:http"))
  #expect(app.affinity?.timeoutSeconds == 10800)
  #expect(app.pinnedClients.map(\.client.description) == ["192.168.5.10", "192.168.5.11", "192.168.5.12"])
  #expect(app.pinnedClients.allSatisfy { $0.backend?.description == "10.1.0.1:8080" })
  #expect(app.pinnedClients.map(\.expiresInSeconds) == [10752.5, 3600, 10])
  #expect(app.pinnedClients.map(\.lastSeenAgeSeconds) == [47.5, 7200, 10790])
  #expect(app.backends.first?.observedConnections == 42)
  #expect(app.observedCounterSource == "nft endpoint-chain dnat rule counters")
}

@Test func nftFormatDetection() {
  #expect(NFTRulesReader.looksLike(["table ip kube-proxy {"]))
  #expect(NFTRulesReader.looksLike(["", "add table ip kube-proxy { comment \"rules for kube-proxy\" ; }"]))
  #expect(NFTRulesReader.looksLike(["## heading", "chain KUBE-SERVICES {"]))
  #expect(!NFTRulesReader.looksLike(["*nat", ":KUBE-SERVICES - [0:0]"]))
  #expect(!NFTRulesReader.looksLike(["IP Virtual Server version 1.2.1 (size=4096)"]))
}

@Test func notNFTTextThrowsNotRules() throws {
  #expect(throws: RulesReaderError.self) {
    _ = try readNFTText("hello world\nthis is not nft\n")
  }
  #expect(throws: RulesReaderError.self) {
    _ = try NFTRulesReader.read(path: "/nonexistent/lbscope-nft", input: 0)
  }
}

/// Every prefix of a valid input reads cleanly: no crash, and never more services than the whole.
@Test func everyPrefixOfAnNFTListingEndsCleanly() throws {
  for name in [
    "k3s-notes_nft-list-table-ip-kube-proxy_nftables-mode_full.nft.txt",
    "k8s-unittest_TestOverallNFTablesRules_nft-f-transaction_affinity-firewall.nft",
  ] {
    let whole = try String(contentsOfFile: S.corpusFile("nft", name), encoding: .utf8)
    let (all, _) = try readNFT(name)
    let bytes = Array(whole.utf8)
    var cut = 0
    while cut < bytes.count {
      let prefix = String(decoding: bytes[..<cut], as: UTF8.self)
      if let (services, summary) = try? readNFTText(prefix, complete: false) {
        #expect(services.count <= all.count + 1, "\(name) cut at \(cut)")
        #expect(summary.records <= bytes.count)
        if cut > 0, bytes[cut - 1] != 0x0A { #expect(summary.partial, "\(name) cut at \(cut)") }
      }
      cut += 97
    }
  }
}
