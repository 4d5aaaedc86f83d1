import Foundation
import LBCore
import LBRules
import Testing

@Suite struct IptablesCorpusTests {
  static let corpus = files(in: corpusRoot.appendingPathComponent("iptables"))

  @Test func corpusIsPresent() {
    #expect(Self.corpus.count >= 10, "../shared/corpus/iptables should hold the iptables samples")
  }

  @Test(arguments: corpus)
  func everyCorpusDumpReadsWithoutCrashing(_ url: URL) throws {
    let (dump, summary) = try IptablesSaveReader.read(path: url.path)
    let built = IptablesServices(dump: dump, input: 0).services()
    let name = url.lastPathComponent
    if name.contains("CORRUPT") || name.contains("MALFORMED") || name.contains("MANGLED") {
      #expect(summary.issueCount > 0, "\(name) is marked damaged but gave no issue")
    }
    if name.contains("LIST-FORMAT-not-save") {
      #expect(summary.unsupported > 0 && built.isEmpty)
      #expect(RulesReader.detect(head: Array((try Data(contentsOf: url))), name: url.path) == nil)
    } else {
      #expect(RulesReader.detect(head: Array((try Data(contentsOf: url))), name: url.path) == .iptablesSave)
    }
  }

  @Test func corruptDNATDestinationIsCountedAndTheServiceStillNamed() throws {
    let url = corpusRoot.appendingPathComponent(
      "iptables/k8s-issue114537_iptables-save-t-nat-grep_CORRUPT-DNAT-to-destination.txt")
    let (dump, summary) = try IptablesSaveReader.read(path: url.path)
    #expect(summary.malformed == 1)
    #expect(summary.examples.first?.message.contains("names no endpoint") == true)
    let built = IptablesServices(dump: dump, input: 0).services()
    #expect(built.map(\.name) == ["insight-system/insight-agent-prometheus-node-exporter:http-metrics"])
    #expect(built.first?.backends.isEmpty == true)
  }

  /// kube-proxy's own expected rules (TestOverallIPTablesRules): every current shape.
  @Test func kubeProxyUnitTestRulesGiveTheServicesTheTestDescribes() throws {
    let url = corpusRoot.appendingPathComponent(
      "iptables/k8s-unittest_TestOverallIPTablesRules_v1.3x_ext-fw-recent.iptables-save.txt")
    let (dump, summary) = try IptablesSaveReader.read(path: url.path)
    #expect(summary.issueCount == 0)
    let all = IptablesServices(dump: dump, input: 0).services()
    #expect(all.compactMap(\.name) == (1...6).map { "ns\($0)/svc\($0):p80" })

    let svc2 = try #require(service(named: "ns2/svc2:p80", in: all))
    #expect(svc2.externalTrafficPolicy == .local)
    #expect(svc2.noLocalEndpoints == .drop)
    #expect(svc2.backends.map(\.expectedShareExternal) == [0])
    #expect(
      svc2.frontends.map(\.description) == ["1.2.3.4:80", "172.30.0.42:80", "192.168.99.22:80", "*:3001"])
    #expect(svc2.frontends.map(\.kind) == [.loadBalancer, .clusterIP, .externalIP, .nodePort])

    let svc4 = try #require(service(named: "ns4/svc4:p80", in: all))
    #expect(svc4.backends.map(\.endpoint.description) == ["10.180.0.4:80", "10.180.0.5:80"])
    #expect(svc4.backends.map(\.expectedShare) == [0.5, 0.5])
    #expect(svc4.externalTrafficPolicy == .cluster)
    #expect(svc4.masquerade.contains(.externalPolicyCluster))

    let svc5 = try #require(service(named: "ns5/svc5:p80", in: all))
    #expect(svc5.affinity?.timeoutSeconds == 10800)
    #expect(svc5.backends.first?.affinityList == "KUBE-SEP-I77PXRDZVX7PMWMN")
    #expect(svc5.frontends.contains { $0.kind == .loadBalancer && $0.description == "5.6.7.8:80" })
    #expect(svc5.externalTrafficPolicy == .cluster)

    let svc6 = try #require(service(named: "ns6/svc6:p80", in: all))
    #expect(svc6.noEndpoints == .reject && svc6.backends.isEmpty)
    #expect(svc6.frontends.map(\.description) == ["172.30.0.46:80"])

    let svc1 = try #require(service(named: "ns1/svc1:p80", in: all))
    #expect(svc1.externalTrafficPolicy == nil)
    #expect(svc1.masquerade == [.clusterIPFromOutsideCluster, .hairpin])
  }

  /// A GKE node's KUBE-XLB chain (externalTrafficPolicy Local, older shape) with affinity.
  @Test func xlbChainGivesLocalSharesOverThisNodesEndpoints() throws {
    let url = corpusRoot.appendingPathComponent(
      "iptables/gke-doc_php-apache_sessionaffinity-ClientIP_XLB-local_iptables-t-nat-S.txt")
    let (dump, _) = try IptablesSaveReader.read(path: url.path)
    let all = IptablesServices(dump: dump, input: 0).services()
    let s = try #require(all.first)
    #expect(all.count == 1)
    #expect(s.externalTrafficPolicy == .local)
    #expect(s.affinity?.timeoutSeconds == 10800)
    let local = s.backends.filter { $0.isLocal == true }.map(\.endpoint.description)
    #expect(local == ["10.28.8.5:80", "10.28.8.6:80"])
    for b in s.backends {
      #expect(abs((b.expectedShare ?? 0) - 0.25) < 1e-5)
      #expect(abs((b.expectedShareExternal ?? -1) - (b.isLocal == true ? 0.5 : 0)) < 1e-9)
    }
    #expect(s.frontends.map(\.description) == ["10.31.240.99:80", "*:31332"])
  }

  /// v1.2-era rules: `--set-xmark` inline in the endpoint chain, 5-decimal probabilities.
  @Test func oldShapeSharesAreEqualWithinTheWritersPrecision() throws {
    let url = corpusRoot.appendingPathComponent(
      "iptables/kubernetes-handbook_troubleshooting_iptables-save-grep-hostnames_v1.2-era.txt")
    let (dump, _) = try IptablesSaveReader.read(path: url.path)
    let s = try #require(IptablesServices(dump: dump, input: 0).services().first)
    #expect(s.name == "default/hostnames:")
    #expect(s.backends.count == 3)
    #expect(s.masquerade == [.hairpin])
    for b in s.backends { #expect(abs((b.expectedShare ?? 0) - 1.0 / 3) < 1e-5) }
  }

  @Test func recentOptionsAreReadInEitherOrder() {
    let (all, summary) = services(
      """
      -A KUBE-SERVICES -d 10.0.0.1/32 -p tcp -m comment --comment "a/b:c cluster IP" -m tcp --dport 80 -j KUBE-SVC-X
      -A KUBE-SVC-X -m comment --comment "a/b:c -> 10.1.0.1:80" -m recent --name KUBE-SEP-A --rcheck --seconds 60 --reap -j KUBE-SEP-A
      -A KUBE-SVC-X -m comment --comment "a/b:c -> 10.1.0.2:80" -m recent --rcheck --seconds 60 --reap --name KUBE-SEP-B --mask 255.255.255.255 --rsource -j KUBE-SEP-B
      -A KUBE-SVC-X -m comment --comment "a/b:c -> 10.1.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-A
      -A KUBE-SVC-X -m comment --comment "a/b:c -> 10.1.0.2:80" -j KUBE-SEP-B
      -A KUBE-SEP-A -p tcp -m comment --comment a/b:c -m recent --name KUBE-SEP-A --set -m tcp -j DNAT --to-destination 10.1.0.1:80
      -A KUBE-SEP-B -p tcp -m comment --comment a/b:c -m recent --set --name KUBE-SEP-B --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.1.0.2:80
      """)
    #expect(summary.issueCount == 0)
    #expect(all.count == 1)
    #expect(all.first?.affinity?.timeoutSeconds == 60)
    #expect(all.first?.backends.map(\.affinityList) == ["KUBE-SEP-A", "KUBE-SEP-B"])
  }

  @Test func ipv6DumpGivesBracketedEndpoints() {
    let (all, summary) = services(
      """
      *nat
      :KUBE-SERVICES - [0:0]
      [3:180] -A KUBE-SERVICES -d fd00:10:96::a/128 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-SVC-D
      [1:60] -A KUBE-SVC-D -m comment --comment "kube-system/kube-dns:dns -> [fd00:10:244::2]:53" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-1
      [2:120] -A KUBE-SVC-D -m comment --comment "kube-system/kube-dns:dns -> [fd00:10:244::3]:53" -j KUBE-SEP-2
      [1:60] -A KUBE-SEP-1 -p udp -m comment --comment kube-system/kube-dns:dns -m udp -j DNAT --to-destination [fd00:10:244::2]:53
      [2:120] -A KUBE-SEP-2 -p udp -m comment --comment kube-system/kube-dns:dns -m udp -j DNAT --to-destination [fd00:10:244::3]:53
      COMMIT
      """)
    #expect(summary.issueCount == 0)
    let s = all.first
    #expect(s?.proto == .udp)
    #expect(s?.frontends.map(\.description) == ["[fd00:10:96::a]:53"])
    #expect(s?.backends.map(\.endpoint.description) == ["[fd00:10:244::2]:53", "[fd00:10:244::3]:53"])
    #expect(s?.backends.map(\.observedConnections) == [1, 2])
  }

  @Test func cutLinesAreCountedAsTruncated() {
    let (_, summary) = services(
      """
      *nat
      -A KUBE-SVC-X -m comment --comment "a/b:c -> 10.1.0.1:80
      -A KUBE-SVC-X -m statistic --mode random --probability
      -A KUBE-SEP-A -p tcp -j
      """)
    // Three cut rules, and the nat table never reaches its COMMIT.
    #expect(summary.truncated == 4)
    #expect(summary.examples.contains { $0.message.contains("has no COMMIT") })
    #expect(summary.partial)
  }

  /// Every prefix of a real dump reads without a crash and never invents services.
  @Test func dripFedAffinityDumpNeverCrashes() throws {
    let text = try String(
      contentsOf: capturesRoot.appendingPathComponent("affinity-nat/iptables-save.txt"), encoding: .utf8)
    let bytes = Array(text.utf8)
    var stride = 1
    var cut = 0
    while cut <= bytes.count {
      let prefix = String(decoding: bytes[..<cut], as: UTF8.self)
      let (all, _) = services(prefix)
      #expect(all.count <= 1)
      #expect(all.allSatisfy { $0.backends.count <= 4 })
      cut += stride
      stride = cut < 400 ? 1 : 13
    }
  }
}
