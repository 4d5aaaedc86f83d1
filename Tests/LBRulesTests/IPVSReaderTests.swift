import LBCore
import LBRules
import Testing

private typealias S = DatapathTestSupport

private func readIPVS(_ name: String) throws -> IPVSReadResult {
  try IPVSRulesReader.readAll(path: S.corpusFile("ipvs", name), input: 0)
}

/// Reads `text` as a file; `complete` adds the line end tools always print last.
private func readIPVSText(_ text: String, complete: Bool = true) throws -> IPVSReadResult {
  try S.withTemporaryFile(complete && !text.hasSuffix("\n") ? text + "\n" : text) {
    try IPVSRulesReader.readAll(path: $0, input: 0)
  }
}

@Test func everyIPVSCorpusFileIsReadWithoutACrash() throws {
  let files = S.files(in: "ipvs")
  #expect(files.count == 15)
  for path in files {
    if path.contains("ip-addr_kube-ipvs0") {
      // `ip addr` output, not ipvsadm: a clear error, not a crash.
      #expect(throws: RulesReaderError.self) { _ = try IPVSRulesReader.read(path: path, input: 0) }
      continue
    }
    let r = try IPVSRulesReader.readAll(path: path, input: 0)
    #expect(!r.services.isEmpty || !r.connections.isEmpty, "\(path)")
    let marked = ["PARTIAL", "ODD"].contains { path.contains($0) }
    if !marked { #expect(r.summary.issueCount == 0, "\(path): \(r.summary.examples)") }
  }
}

@Test func saveFormGivesPersistenceAndEqualRoundRobinShares() throws {
  let r = try readIPVS("doc-unknown-repo_ipvsadm-S-n_persistent-10800.txt")
  #expect(r.services.count == 2)
  let api = try #require(r.services.first { $0.frontends.first?.description == "10.1.0.1:443" })
  #expect(api.affinity == nil)
  #expect(api.scheduler == "rr")
  #expect(api.backends.count == 3)
  #expect(api.backends.allSatisfy { $0.forwarding == "Masq" && $0.weight == 1 })
  #expect(api.backends.allSatisfy { abs(($0.expectedShare ?? 0) - 1.0 / 3) < 1e-12 })
  let app = try #require(r.services.first { $0.frontends.first?.description == "10.1.21.161:8080" })
  #expect(app.affinity?.timeoutSeconds == 10800)
  #expect(app.affinity?.source == .ipvs)
  #expect(app.backends.map(\.expectedShare) == [0.2, 0.2, 0.2, 0.2, 0.2])
}

@Test func listFormsGivePersistentTimeoutsSchedulersAndIPv6() throws {
  let ops = try readIPVS("opsnull-issue251_ipvsadm-L-n_nodeport-vips_persistent-10800.txt")
  #expect(ops.services.count == 7)
  #expect(
    ops.services.filter { $0.affinity?.timeoutSeconds == 10800 }.map(\.frontends.first?.description) == [
      "10.254.0.1:443"
    ])
  let wlc = try readIPVS("k8s-community-pr692_ipvsadm-L-n_wlc_persistent-10.txt")
  #expect(wlc.services.first?.scheduler == "wlc")
  #expect(wlc.services.first?.affinity?.timeoutSeconds == 10)
  #expect(wlc.services.first?.backends.first?.activeConnections == 1)
  let persist = try readIPVS("k8s-community-pr692_ipvsadm-L-n--persistent-conn.txt")
  #expect(persist.services.first?.affinity?.timeoutSeconds == 60)
  #expect(persist.services.first?.backends.first?.weight == 1)
  let v6 = try readIPVS("k8s-issue87604_ipvsadm-ln_ipv6-only.txt")
  #expect(
    v6.services.map(\.frontends.first?.description) == ["[fd20::1]:443", "[fd20::a]:53", "[fd20::a]:9153"])
  #expect(v6.services[1].backends.map(\.endpoint.description) == ["[fd20::7041]:53", "[fd20::7042]:53"])
  #expect(v6.services[0].backends.first?.activeConnections == 5)
  let readme = try readIPVS("k8s-ipvs-README_ipvsadm-ln_persistent-tcp-udp.txt")
  #expect(readme.services.map(\.proto) == [.tcp, .tcp, .udp])
}

@Test func statsGiveObservedConnections() throws {
  let r = try readIPVS("kube-router-pr160_ipvsadm-ln-stats_PARTIAL.txt")
  let web = try #require(r.services.first { $0.frontends.first?.description == "10.3.0.42:80" })
  #expect(web.backends.map(\.observedConnections) == [2, 2, 2, 3, 3, 3, 3, 3])
  #expect(web.backends.last?.observedPackets == 30)
  #expect(web.backends.last?.observedBytes == 2502)
  #expect(web.observedCounterSource == "ipvsadm --stats Conns")
  #expect(web.backends.allSatisfy { $0.expectedShare == nil })  // --stats shows no scheduler
}

@Test func statsSuffixesAreMultipliedBackAndNoted() throws {
  // Columns as ipvsadm's print_largenum writes them without --exact.
  let text = """
    IP Virtual Server version 1.2.1 (size=4096)
    Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
      -> RemoteAddress:Port
    TCP  10.96.0.1:443                  123456K     987M  5432109      12G       3T
      -> 10.244.1.5:6443                 99999999    500K        7     120G       1T
      -> 10.244.2.5:6443                 23456K        12        7        9        1
    """
  let r = try readIPVSText(text)
  #expect(r.summary.issueCount == 0)
  let svc = try #require(r.services.first)
  #expect(svc.backends.map(\.observedConnections) == [99_999_999, 23_456_000])
  #expect(svc.backends.first?.observedPackets == 500_007)
  #expect(svc.backends.first?.observedBytes == 121_000_000_000_000 - 120_000_000_000_000 + 120_000_000_000)
  #expect(svc.observedCounterSource == "ipvsadm --stats Conns (rounded)")
  #expect(r.summary.notes.contains { $0.contains("K/M/G/T") })
  let exact = try readIPVSText(
    """
    Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
      -> RemoteAddress:Port
    TCP  10.96.0.1:443                 123456789 1 1 1 1
      -> 10.244.1.5:6443               123456789 1 1 1 1
    """)
  #expect(exact.services.first?.backends.first?.observedConnections == 123_456_789)
  #expect(exact.summary.notes.allSatisfy { !$0.contains("K/M/G/T") })
}

@Test func connectionEntriesAndPersistenceTemplates() throws {
  let keep = try readIPVS("keepalived-issue1138_ipvsadm-L-c-n_connection-entries_PARTIAL.txt")
  #expect(keep.connections.count == 12)
  let first = try #require(keep.connections.first)
  #expect(first.client.description == "10.142.81.39:49715")
  #expect(first.frontend.description == "10.40.25.43:18000")
  #expect(first.backend.description == "10.40.25.16:18000")
  #expect(first.state == .established)
  let odd = try readIPVS("alibaba-lvs-issue29_ipvsadm-Lnc_fullnat_hex-state_ODD.txt")
  #expect(odd.connections.count == 2)
  #expect(odd.summary.unsupported == 2)
  #expect(
    odd.connections.allSatisfy { $0.state == nil && $0.backend.description.hasPrefix("192.168.200.108:") })

  let text = """
    IP Virtual Server version 1.2.1 (size=4096)
    Prot LocalAddress:Port Scheduler Flags
      -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
    TCP  10.96.0.1:443 rr persistent 10800
      -> 10.244.1.5:6443              Masq    1      1          0
      -> 10.244.2.5:6443              Masq    1      0          0
    IPVS connection entries
    pro expire state       source             virtual            destination
    TCP 179:12 NONE        192.168.50.10:0    10.96.0.1:443      10.244.1.5:6443
    TCP 14:59  ESTABLISHED 192.168.50.10:40000 10.96.0.1:443     10.244.1.5:6443
    TCP 02:58  NONE        192.168.50.11:0    10.96.9.9:80       10.244.3.5:80
    """
  let r = try readIPVSText(text)
  #expect(r.summary.issueCount == 0)
  let svc = try #require(r.services.first)
  #expect(svc.pinnedClients.map(\.client.description) == ["192.168.50.10"])
  #expect(svc.pinnedClients.first?.backend?.description == "10.244.1.5:6443")
  #expect(svc.pinnedClients.first?.expiresInSeconds == 10752)
  #expect(r.connections.count == 1)
  #expect(r.unlinkedPins.map(\.client.description) == ["192.168.50.11"])
  #expect(r.unlinkedPins.first?.list == "TCP 10.96.9.9:80")
}

@Test func schedulersGiveSharesOrNil() {
  #expect(IPVSScheduler.expectedShares(scheduler: "rr", weights: [1, 0, 3]).shares == [0.5, 0, 0.5])
  #expect(IPVSScheduler.expectedShares(scheduler: "wrr", weights: [1, 3]).shares == [0.25, 0.75])
  #expect(IPVSScheduler.expectedShares(scheduler: "wlc", weights: [2, 2]).shares == [0.5, 0.5])
  #expect(IPVSScheduler.expectedShares(scheduler: "wlc", weights: [2, 2]).note != nil)
  #expect(IPVSScheduler.expectedShares(scheduler: "lc", weights: [1, 1]).shares == nil)
  #expect(IPVSScheduler.expectedShares(scheduler: "sh", weights: [1, 1]).shares == nil)
  #expect(IPVSScheduler.expectedShares(scheduler: "dh", weights: [1, 1]).shares == nil)
  #expect(IPVSScheduler.expectedShares(scheduler: "fo", weights: [1, 5, 5]).shares == [0, 1, 0])
}

@Test func unevenWeightsAreReported() throws {
  let r = try readIPVSText(
    """
    -A -t 10.96.0.1:80 -s wrr
    -a -t 10.96.0.1:80 -r 10.244.1.5:80 -m -w 1
    -a -t 10.96.0.1:80 -r 10.244.2.5:80 -m -w 3
    -A -u 10.96.0.2:53 -s rr
    -a -u 10.96.0.2:53 -r 10.244.1.6:53 -m -w 1
    -a -u 10.96.0.2:53 -r 10.244.2.6:53 -m -w 0
    -A -f 7 -s rr
    -a -f 7 -r 10.244.1.7:0 -g -w 1
    -a -f 7 -r 10.244.2.7:0 -g -w 1
    """)
  #expect(r.summary.issueCount == 0)
  let wrr = try #require(r.services.first { $0.proto == .tcp && $0.frontends.first?.kind != .firewallMark })
  #expect(wrr.backends.map(\.expectedShare) == [0.25, 0.75])
  let finding = try #require(IPVSWeightsUnevenness.check(wrr))
  #expect(IPVSWeightsUnevenness.code == "weights-uneven")
  #expect(finding.severity == "warning")
  let udp = try #require(r.services.first { $0.proto == .udp })
  #expect(udp.backends.map(\.expectedShare) == [1, 0])
  #expect(IPVSWeightsUnevenness.check(udp)?.summary.contains("weight 0") == true)
  let fwm = try #require(r.services.first { $0.frontends.first?.kind == .firewallMark })
  #expect(fwm.frontends.first?.description == "fwmark:7")
  #expect(fwm.backends.allSatisfy { $0.forwarding == "Route" })
  #expect(IPVSWeightsUnevenness.check(fwm) == nil)
}

@Test func ipvsFormatDetection() {
  #expect(IPVSRulesReader.looksLike(["IP Virtual Server version 1.2.1 (size=4096)"]))
  #expect(IPVSRulesReader.looksLike(["IPVS connection entries"]))
  #expect(IPVSRulesReader.looksLike(["-A -t 10.1.0.1:443 -s rr"]))
  #expect(!IPVSRulesReader.looksLike(["-A KUBE-SERVICES -j KUBE-NODEPORTS"]))
  #expect(!IPVSRulesReader.looksLike(["table ip kube-proxy {"]))
}

@Test func everyPrefixOfAnIPVSDumpEndsCleanly() throws {
  for name in [
    "opsnull-issue251_ipvsadm-L-n_nodeport-vips_persistent-10800.txt",
    "kube-router-pr160_ipvsadm-ln-stats_PARTIAL.txt",
    "keepalived-issue1138_ipvsadm-L-c-n_connection-entries_PARTIAL.txt",
    "doc-unknown-repo_ipvsadm-S-n_persistent-10800.txt",
  ] {
    let bytes = Array(try String(contentsOfFile: S.corpusFile("ipvs", name), encoding: .utf8).utf8)
    let whole = try readIPVS(name)
    for cut in 0..<bytes.count {
      let prefix = String(decoding: bytes[..<cut], as: UTF8.self)
      guard let r = try? readIPVSText(prefix, complete: false) else { continue }
      #expect(r.services.count <= whole.services.count, "\(name) cut at \(cut)")
      #expect(r.connections.count <= whole.connections.count)
      // A cut inside a line is counted, never silently read as a shorter number.
      if cut > 0, bytes[cut - 1] != 0x0A,
        !(prefix.split(separator: "\n").last ?? "").allSatisfy({ $0 == " " })
      {
        #expect(r.summary.partial, "\(name) cut at \(cut)")
      }
    }
  }
}
