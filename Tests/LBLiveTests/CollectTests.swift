import Foundation
import LBLabSupport
import Testing

@Suite(.serialized) struct CollectTests {
  @Test(.enabled(if: isRoot, Comment(rawValue: needsRoot)))
  func bundleReadsBackLikeTheSeparateFiles() throws {
    let lab = try Lab("collect")
    defer { lab.close() }
    #expect(try lab.drive(16) == 16)
    let dir = try temporaryDirectory("collect")
    let bundle = dir + "/node"
    let collected = try lab.inNode([binary, "collect", "--output", bundle, "--timeout", "20"])
    #expect(collected.status == 0, "\(collected.stderr)")
    #expect(FileManager.default.fileExists(atPath: bundle + ".tar.gz"))
    #expect(!FileManager.default.fileExists(atPath: bundle + ".lbscope-tmp-\(getpid())"))

    // The same two sources taken separately, right after.
    let listed = try lab.inNode(["conntrack", "-L"])
    try listed.stdout.write(toFile: dir + "/conntrack-L.txt", atomically: true, encoding: .utf8)
    let saved = try lab.inNode(["iptables-save", "-c"])
    #expect(saved.status == 0)

    let separate = try run(binary, ["conntrack", "-f", "json", dir + "/conntrack-L.txt"])
    let fromDirectory = try run(binary, ["conntrack", "-f", "json", bundle])
    let fromArchive = try run(binary, ["conntrack", "-f", "json", bundle + ".tar.gz"])
    #expect(
      separate.status == 0 && fromDirectory.status == 0 && fromArchive.status == 0, "\(fromArchive.stderr)")
    #expect(servicesSection(fromDirectory.stdout) == servicesSection(separate.stdout))
    #expect(servicesSection(fromArchive.stdout) == servicesSection(separate.stdout))
    #expect(servicesSection(separate.stdout).contains("\"connections\": 16"))
    #expect(fromArchive.stdout.contains("node.tar.gz/conntrack-L.txt"))

    // `lbscope report` on the bundle finds what it finds in the separate files.
    try saved.stdout.write(toFile: dir + "/iptables-save.txt", atomically: true, encoding: .utf8)
    func findings(_ arguments: [String]) throws -> [String] {
      let report = try run(binary, ["report", "-f", "json"] + arguments)
      #expect([0, 1].contains(report.status), "\(report.stderr)")
      let object = try JSONSerialization.jsonObject(with: Data(report.stdout.utf8)) as? [String: Any]
      let list = try #require(object?["findings"] as? [[String: Any]])
      let services = try #require(object?["services"] as? [[String: Any]])
      return list.map { "\($0["severity"] ?? "") \($0["code"] ?? "") \($0["service"] ?? "")" }
        + services.map { "\($0["name"] ?? "") \($0["connections"] ?? "")" }
    }
    let bundleFindings = try findings([bundle])
    #expect(bundleFindings == (try findings([dir + "/conntrack-L.txt", dir + "/iptables-save.txt"])))
    #expect(bundleFindings.contains { $0.hasSuffix(" 16") }, "\(bundleFindings)")

    // iptables-save -c taken by collect equals the one taken by hand: the same rules, and the
    // same counters on the Service's rules (the node's own stray packets, such as a late RST,
    // may move the chain policies' and OUTPUT's counters in between).
    func rules(_ text: String) -> [String] {
      text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
        // "[p:b] -A …" rules and ":CHAIN POLICY [p:b]" chains, without the counters.
        var words = line.split(separator: " ")
        if words.first?.hasPrefix("[") == true { words.removeFirst() }
        if line.hasPrefix(":"), words.last?.hasPrefix("[") == true { words.removeLast() }
        return words.joined(separator: " ")
      }
    }
    func serviceCounters(_ text: String) -> [Substring] {
      text.split(separator: "\n").filter { $0.contains("LABLIVE") && $0.hasPrefix("[") }
    }
    let inBundle = try String(contentsOfFile: bundle + "/iptables-save.txt", encoding: .utf8)
    #expect(rules(inBundle) == rules(saved.stdout))
    #expect(serviceCounters(inBundle) == serviceCounters(saved.stdout))
    #expect(serviceCounters(inBundle).contains { $0.hasPrefix("[16:960] -A KUBE-SERVICES") })

    // The manifest records what could not be run instead of stopping.
    let manifest = try String(contentsOfFile: bundle + "/manifest.json", encoding: .utf8)
    #expect(manifest.contains("\"argv\""))
    #expect(manifest.contains("\"kind\": \"conntrack\""))
    #expect(manifest.contains("\"kind\": \"jiffies\""))
    let jiffies = try String(contentsOfFile: bundle + "/jiffies.txt", encoding: .utf8)
    #expect(jiffies.hasPrefix("jiffies: "))
    #expect(jiffies.contains("CONFIG_HZ: "))
  }

  @Test(.enabled(if: isRoot, "needs root to drop privileges with setpriv"))
  func collectWithoutPrivilegeRecordsTheDeniedItemsAndGoesOn() throws {
    let dir = try temporaryDirectory("collect-unprivileged")
    chmod(dir, 0o777)
    let result = try run(
      PrivilegeTests.dropped[0],
      Array(PrivilegeTests.dropped.dropFirst()) + [
        binary, "collect", "--output", dir + "/b", "--timeout", "10",
      ])
    #expect(result.status == 0, "\(result.stderr)")
    let manifest = try String(contentsOfFile: dir + "/b/manifest.json", encoding: .utf8)
    #expect(manifest.contains("CAP_NET_ADMIN"))
    #expect(FileManager.default.fileExists(atPath: dir + "/b/uname.txt"))
    #expect(FileManager.default.fileExists(atPath: dir + "/b.tar.gz"))
  }
}
