import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// Runs lbscope with extra environment variables.
func lbscope(_ arguments: [String], environment: [String: String]) throws -> Run {
  try runProcess(binary, arguments, environment: environment)
}

let testKey = "correct horse battery staple, for tests only"
let otherKey = "another secret of enough length for tests"

/// Every address literal in a text, in its written form and in the form glibc's `inet_ntop`
/// prints (RFC 5952 for IPv6): an oracle independent of lbscope's own parser.
func addressLiterals(in text: String) -> Set<String> {
  var found = Set<String>()
  let allowed = Set("0123456789abcdefABCDEF:.")
  var token = ""
  func flush() {
    var t = token
    token = ""
    while t.hasSuffix(".") || (t.hasSuffix(":") && !t.hasSuffix("::")) { t.removeLast() }
    guard t.count >= 2 else { return }
    var v6 = in6_addr()
    if t.contains(":"), inet_pton(AF_INET6, t, &v6) == 1 {
      var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
      inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count))
      found.insert(t)
      found.insert(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
      return
    }
    let head = String(t.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    var v4 = in_addr()
    if inet_pton(AF_INET, head, &v4) == 1 { found.insert(head) }
  }
  for ch in text {
    if allowed.contains(ch) { token.append(ch) } else { flush() }
  }
  flush()
  return found
}

/// Whether `address` occurs in `text` as a whole literal (not inside a longer number).
func occurs(_ address: String, in text: String) -> Bool {
  let edge = Set("0123456789abcdefABCDEF.:")
  var search = text.startIndex..<text.endIndex
  while let range = text.range(of: address, range: search) {
    let before = range.lowerBound == text.startIndex ? nil : text[text.index(before: range.lowerBound)]
    let after = range.upperBound == text.endIndex ? nil : text[range.upperBound]
    let ipv6 = address.contains(":")
    let beforeOK = before.map { !edge.contains($0) } ?? true
    let afterOK = after.map { ipv6 ? !edge.contains($0) : !(edge.contains($0) && $0 != ":") } ?? true
    if beforeOK && afterOK { return true }
    search = range.upperBound..<text.endIndex
  }
  return false
}

func jsonObject(_ text: String) throws -> [String: Any] {
  try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

@Suite struct AnonymizeCLITests {
  /// The inputs whose every address is looked for in the anonymized reports.
  static let inputs: [String] = {
    var paths: [String] = []
    for scenario in ["uniform", "affinity-nat"] {
      paths += ["conntrack-L.txt", "conntrack-E.txt", "conntrack-L-extended.txt"].map {
        "captures/\(scenario)/\($0)"
      }
    }
    paths += (1...3).map { "captures/affinity-nat/gateways/gw-\($0)-conntrack-L.txt" }
    let corpus = repository.deletingLastPathComponent().appendingPathComponent("shared/corpus/conntrack")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: corpus.path)) ?? []
    paths += names.sorted().map { corpus.appendingPathComponent($0).path }
    return paths
  }()

  @Test(arguments: inputs)
  func noInputAddressRemainsInEitherFormat(path: String) throws {
    let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : repository.appendingPathComponent(path)
    let input = try String(contentsOf: url, encoding: .utf8)
    let addresses = addressLiterals(in: input)
    try #require(!addresses.isEmpty, "\(path) has addresses to hide")
    for format in ["markdown", "json"] {
      let run = try lbscope(
        [
          "conntrack", path, "--format", format, "--anonymize", "--json-clients", "0", "--top-clients",
          "100000",
        ],
        environment: ["LBSCOPE_ANONYMIZE_KEY": testKey])
      try #require([0, 65].contains(run.status), "\(run.stderr)")
      #expect(!run.stdout.isEmpty)
      let plain = try lbscope(["conntrack", path, "--format", format], environment: [:])
      let leaked = addresses.filter { occurs($0, in: run.stdout) }.sorted()
      #expect(leaked.isEmpty, "\(path) (\(format)) still shows \(leaked)")
      // The check can fail: without --anonymize the lab's reports show their addresses. (Some
      // corpus tables have no Service connections, so their reports show no address at all.)
      if path.hasPrefix("captures/") {
        #expect(addresses.contains { occurs($0, in: plain.stdout) }, "\(path) (\(format)): plain report")
      }
    }
  }

  /// Every lab scenario under `captures/`, for the incident report over all its inputs.
  static let scenarios: [String] = {
    let names =
      (try? FileManager.default.contentsOfDirectory(
        atPath: repository.appendingPathComponent("captures").path)) ?? []
    return names.filter {
      FileManager.default.fileExists(
        atPath: repository.appendingPathComponent("captures/\($0)/truth.json").path)
    }.sorted()
  }()

  /// `lbscope report` over each scenario's conntrack table, rules, xt_recent lists and capture:
  /// no address of its inputs (text files and truth.json) and none the plain report shows is
  /// left in the anonymized report, in either format.
  @Test(arguments: scenarios)
  func noAddressRemainsInAScenariosIncidentReport(scenario: String) throws {
    let directory = "captures/\(scenario)"
    let present = Set(
      (try? FileManager.default.contentsOfDirectory(atPath: repository.appendingPathComponent(directory).path))
        ?? [])
    let inputs = ["conntrack-L.txt", "iptables-save.txt", "nft-list-ruleset.txt", "xt_recent", "node.pcap"]
      .filter(present.contains).map { "\(directory)/\($0)" }
      .filter {  // nft-affinity's iptables-save.txt is empty: the node ran kube-proxy in nftables mode
        let attributes = try? FileManager.default.attributesOfItem(
          atPath: repository.appendingPathComponent($0).path)
        return attributes?[.type] as? FileAttributeType == .typeDirectory
          || (attributes?[.size] as? Int ?? 0) > 0
      }
    try #require(inputs.contains("\(directory)/node.pcap"))
    var addresses = Set<String>()
    for name in ["conntrack-L.txt", "iptables-save.txt", "nft-list-ruleset.txt", "truth.json"]
    where present.contains(name) {
      let text = try String(
        contentsOf: repository.appendingPathComponent("\(directory)/\(name)"), encoding: .utf8)
      addresses.formUnion(addressLiterals(in: text))
    }
    for format in ["markdown", "json"] {
      let options = ["--format", format, "--json-clients", "0", "--top-clients", "100000"]
      let plain = try lbscope(["report"] + inputs + options, environment: [:])
      try #require([0, 65].contains(plain.status), "\(plain.stderr)")
      let shown = addressLiterals(in: plain.stdout)
      // The check can fail: the plain report shows the scenario's addresses.
      #expect(shown.contains { addresses.contains($0) }, "\(scenario) (\(format)): plain report")
      let run = try lbscope(
        ["report"] + inputs + options + ["--anonymize"], environment: ["LBSCOPE_ANONYMIZE_KEY": testKey])
      try #require(run.status == plain.status, "\(run.stderr)")
      let leaked = addresses.union(shown).filter { occurs($0, in: run.stdout) }.sorted()
      #expect(leaked.isEmpty, "\(scenario) (\(format)) still shows \(leaked)")
    }
  }

  @Test func reportsFromDifferentInputsShareThePseudonymsOfSharedAddresses() throws {
    func frontendAndBackends(_ scenario: String, key: String) throws -> (String, Set<String>) {
      let run = try lbscope(
        ["conntrack", "captures/\(scenario)/conntrack-L.txt", "--format", "json", "--anonymize"],
        environment: ["LBSCOPE_ANONYMIZE_KEY": key])
      #expect(run.status == 0, "\(run.stderr)")
      let object = try jsonObject(run.stdout)
      let service = try #require((object["services"] as? [[String: Any]])?.first)
      let frontend = try #require((service["frontends"] as? [String])?.first)
      let backends = (service["backends"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String }
      #expect((object["anonymized"] as? [String: Any])?["names"] as? String == "kept")
      return (frontend, Set(backends))
    }
    // Both scenarios use Service 10.96.0.10:80 and Pods in 10.244.1.0/24.
    let (uniformFrontend, uniformBackends) = try frontendAndBackends("uniform", key: testKey)
    let (affinityFrontend, affinityBackends) = try frontendAndBackends("affinity-nat", key: testKey)
    #expect(uniformFrontend == affinityFrontend)
    #expect(uniformFrontend != "10.96.0.10:80")
    #expect(!affinityBackends.isEmpty && affinityBackends.isSubset(of: uniformBackends))
    let (otherFrontend, otherBackends) = try frontendAndBackends("uniform", key: otherKey)
    #expect(otherFrontend != uniformFrontend)
    #expect(otherBackends.isDisjoint(with: uniformBackends))
    // The Pods share 10.244.1.0/29 (at least), and so do their pseudonyms.
    let prefixes = Set(uniformBackends.map { $0.split(separator: ".").prefix(3).joined(separator: ".") })
    #expect(prefixes.count == 1, "\(uniformBackends)")
  }

  @Test func readsTheKeyFromAFileLikeFromTheEnvironment() throws {
    let keyFile = temporaryPath("key")
    try Data((testKey + "\n").utf8).write(to: URL(fileURLWithPath: keyFile))
    defer { try? FileManager.default.removeItem(atPath: keyFile) }
    let fromFile = try lbscope(
      ["conntrack", "captures/uniform/conntrack-L.txt", "--anonymize", "--anonymize-key-file", keyFile],
      environment: [:])
    let fromEnvironment = try lbscope(
      ["conntrack", "captures/uniform/conntrack-L.txt", "--anonymize"],
      environment: ["LBSCOPE_ANONYMIZE_KEY": testKey])
    #expect(fromFile.status == 0)
    #expect(fromFile.stdout == fromEnvironment.stdout)
    #expect(!fromFile.stdout.contains("10.96.0.10"))
  }

  @Test func refusesWithoutAKeyInOneLine() throws {
    let process = try lbscope(
      ["conntrack", "captures/uniform/conntrack-L.txt", "--anonymize"],
      environment: ["LBSCOPE_ANONYMIZE_KEY": ""])
    #expect(process.status == 64)
    #expect(process.stdout.isEmpty)
    #expect(process.stderr.split(separator: "\n").count == 1)
    #expect(process.stderr.hasPrefix("lbscope: "))
    let short = try lbscope(
      ["conntrack", "captures/uniform/conntrack-L.txt", "--anonymize"],
      environment: ["LBSCOPE_ANONYMIZE_KEY": "short"])
    #expect(short.status == 64)
    let missing = try lbscope(
      [
        "conntrack", "captures/uniform/conntrack-L.txt", "--anonymize", "--anonymize-key-file",
        "/nonexistent/key",
      ],
      environment: [:])
    #expect(missing.status == 66)
    #expect(missing.stderr.split(separator: "\n").count == 1)
  }

  @Test func hashesNamesOnRequest() throws {
    // The conntrack reports carry no names yet; the names flag still works and says so.
    let run = try lbscope(
      [
        "conntrack", "captures/uniform/conntrack-L.txt", "--format", "json", "--anonymize-names",
        "--anonymize",
      ],
      environment: ["LBSCOPE_ANONYMIZE_KEY": testKey])
    #expect(run.status == 0)
    #expect((try jsonObject(run.stdout)["anonymized"] as? [String: Any])?["names"] as? String == "hashed")
    let without = try lbscope(
      ["conntrack", "captures/uniform/conntrack-L.txt", "--anonymize-names"], environment: [:])
    #expect(without.status == 64)
  }
}

@Suite struct MergeCLITests {
  @Test func mergesNodeReportsAndValidatesAgainstTheSchema() throws {
    let run = try lbscope(
      ["merge", "reports/cluster/node-b.json", "reports/cluster/node-a.json", "--format", "json"],
      environment: [:])
    #expect(run.status == 0, "\(run.stderr)")
    let object = try jsonObject(run.stdout)
    #expect(
      (object["nodes"] as? [[String: Any]])?.compactMap { $0["node"] as? String } == ["node-a", "node-b"])
    #expect((object["inputs"] as? [[String: Any]])?.first?["kind"] as? String == "report")
    guard jsonschemaAvailable else { return }
    let path = try temporaryFile(run.stdout, name: "merge.json")
    defer { try? FileManager.default.removeItem(atPath: path) }
    let anonymized = try lbscope(
      [
        "merge", "reports/cluster/node-a.json", "reports/cluster/node-b.json", "--format", "json",
        "--anonymize",
      ],
      environment: ["LBSCOPE_ANONYMIZE_KEY": testKey])
    let anonymizedPath = try temporaryFile(anonymized.stdout, name: "merge-anonymized.json")
    defer { try? FileManager.default.removeItem(atPath: anonymizedPath) }
    #expect(!anonymized.stdout.contains("10.244.1."))
    let validation = try validate([path, anonymizedPath])
    #expect(validation.status == 0, "\(validation.stdout)\(validation.stderr)")
  }

  @Test func refusesBrokenOrAmbiguousReportsInOneLine() throws {
    let broken = try temporaryFile("{\n  \"schemaVersion\": 1,\n  \"inputs\": [,]\n}\n", name: "broken.json")
    defer { try? FileManager.default.removeItem(atPath: broken) }
    let run = try lbscope(["merge", "reports/cluster/node-a.json", broken], environment: [:])
    #expect(run.status == 66)
    #expect(
      run.stderr
        == "lbscope: \(broken):3: not valid JSON at byte 37: expected a value, found byte 0x2c; give a JSON report written by `lbscope … --format json`\n"
    )
    let notAReport = try lbscope(["merge", "captures/affinity-nat/truth.json"], environment: [:])
    #expect(notAReport.status == 66)
    #expect(notAReport.stderr.hasPrefix("lbscope: captures/affinity-nat/truth.json: schemaVersion: missing"))
    let twice = try lbscope(
      ["merge", "reports/cluster/node-a.json", "reports/cluster/node-a.json"], environment: [:])
    #expect(twice.status == 64)
    #expect(try lbscope(["merge"], environment: [:]).status == 64)
    #expect(try lbscope(["merge", "/nonexistent.json"], environment: [:]).status == 66)
  }
}
