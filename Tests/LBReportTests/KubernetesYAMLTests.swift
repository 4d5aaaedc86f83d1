import Foundation
import LBAnalysis
import LBCore
import LBReport
import LBYAML
import Testing

/// `--k8s` listings in YAML (`kubectl get pods,services,endpointslices -A -o yaml`): read into
/// the same names as the JSON listing, told apart by content, damage reported with its line.
@Suite struct KubernetesYAMLTests {
  func bytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: root.appendingPathComponent(path)))
  }

  func expectSameNames(_ a: ClusterNames, _ b: ClusterNames) {
    #expect(a.pods == b.pods)
    #expect(a.podNodes == b.podNodes)
    #expect(a.services == b.services)
    #expect(a.nodePorts == b.nodePorts)
    #expect(a.nodes == b.nodes)
  }

  @Test func yamlListingGivesTheNamesOfTheJSONListing() throws {
    let json = try KubernetesListing.names(from: bytes("captures/affinity-nat/k8s.json"), path: "k8s.json")
    let yaml = try KubernetesListing.names(from: bytes("captures/affinity-nat/k8s.yaml"), path: "k8s.yaml")
    #expect(!json.pods.isEmpty && !json.services.isEmpty && !json.nodes.isEmpty)
    expectSameNames(json, yaml)
    #expect(yaml.pods[IPAddress("10.244.1.2")!] == "lab/web-0")
    #expect(yaml.services[Endpoint("10.96.0.10:80")!] == "lab/web:http")
    #expect(yaml.podNodes[IPAddress("10.244.1.5")!] == "lab-node-1")
  }

  @Test func yamlDocumentIsTheJSONDocument() throws {
    let json = try JSONParser().parse(bytes("captures/affinity-nat/k8s.json"))
    let yaml = try YAMLReader().parse(bytes("captures/affinity-nat/k8s.yaml"))
    #expect(json == yaml)
  }

  @Test func formatIsToldByContentNotByName() throws {
    #expect(KubernetesListing.format(of: try bytes("captures/affinity-nat/k8s.json")) == .json)
    #expect(KubernetesListing.format(of: try bytes("captures/affinity-nat/k8s.yaml")) == .yaml)
    #expect(KubernetesListing.format(of: Array("\u{FEFF}\n  [1]".utf8)) == .json)
    #expect(KubernetesListing.format(of: Array("---\napiVersion: v1\n".utf8)) == .yaml)
    // A YAML listing saved under a .json name still reads.
    let names = try KubernetesListing.names(
      from: bytes("captures/affinity-nat/k8s.yaml"), path: "cluster.json")
    #expect(names.pods.count == 4)
  }

  @Test func plainScalarsFollowTheCoreSchemaAndQuotedOnesStayStrings() throws {
    let text = """
      a: 80
      b: "80"
      c: true
      d: 'true'
      e: ~
      f:
      g: 1.5
      h: 10.244.1.2
      i: python:3.11
      j: |
        80
      k: -7
      l: .inf
      m: 0x1F
      """
    let value = try YAMLReader().parse(Array(text.utf8))
    #expect(
      value
        == .object([
          "a": .int(80), "b": .string("80"), "c": .bool(true), "d": .string("true"), "e": .null, "f": .null,
          "g": .double(1.5), "h": .string("10.244.1.2"), "i": .string("python:3.11"), "j": .string("80\n"),
          "k": .int(-7), "l": .string(".inf"), "m": .string("0x1F"),
        ]))
  }

  @Test(arguments: [
    // (text, the line where libyaml notices the damage)
    ("apiVersion: v1\nitems:\n- kind: Pod\n  metadata: {name: web-0\nkind: List\n", 5),
    ("apiVersion: v1\nitems:\n- kind: Pod\n\tmetadata: {}\n", 4),
    ("apiVersion: v1\nitems: []\nkind: \"List\n", 4),
    ("apiVersion: v1\nkind: List\nkind: Other\nitems: []\n", 2),
    ("apiVersion: v1\nitems:\n  - a\n b: c\n", 4),
  ])
  func malformedYAMLNamesItsLine(_ text: String, _ line: Int) throws {
    #expect(KubernetesListing.format(of: Array(text.utf8)) == .yaml)
    let error = try #require(throws: KubernetesListError.self) {
      try KubernetesListing.names(from: Array(text.utf8), path: "bad.yaml")
    }
    #expect(error.line == line, "\(error)")
    #expect(error.description.hasPrefix("bad.yaml:\(line): not valid YAML"), "\(error)")
    #expect(error.description.contains("started on line") || !text.contains("{"), "\(error)")
    #expect(!error.description.contains("\n"), "\(error)")
    #expect(error.description.contains("; save it with `kubectl get"))
  }

  @Test func aYAMLThatIsNotAListSaysSo() throws {
    let error = try #require(throws: KubernetesListError.self) {
      try KubernetesListing.names(from: Array("kind: Pod\nmetadata: {name: x}\n".utf8), path: "pod.yaml")
    }
    #expect(error.reason.contains("not a Kubernetes List"))
  }

  @Test func invalidUTF8IsRefusedWithItsLine() throws {
    let text = Array("apiVersion: v1\nitems:\n- kind: P".utf8) + [0xC3, 0x28] + Array("od\n".utf8)
    let error = try #require(throws: YAMLParseError.self) { try YAMLReader().parse(text) }
    #expect(error.line == 3)
    #expect(error.problem.contains("UTF-8"))
  }

  /// Nine levels of ten aliases each, used as a mapping key: Yams would expand and hash 10⁹
  /// nodes. Refused at the first alias, at once.
  @Test func aliasesAreRefusedBeforeTheyExpand() throws {
    var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for level in 1...9 {
      let refs = Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ")
      text += "a\(level): &a\(level) [\(refs)]\n"
    }
    text += "? *a9\n: boom\n"
    let error = try #require(throws: YAMLParseError.self) { try YAMLReader().parse(Array(text.utf8)) }
    #expect(error.line == 2)
    #expect(error.problem.contains("alias"))
  }

  @Test func starsThatAreNotAliasesAreRead() throws {
    let text = """
      a: "*not"
      b: '*not either'
      c: x*y
      d: |
        * a list item in a block scalar
      # *comment
      f: [1, "*", 2]
      """
    let value = try YAMLReader().parse(Array(text.utf8))
    guard case .object(let o) = value else {
      Issue.record("not an object")
      return
    }
    #expect(o["a"] == .string("*not"))
    #expect(o["d"] == .string("* a list item in a block scalar\n"))
    #expect(o["f"] == .array([.int(1), .string("*"), .int(2)]))
  }

  @Test func nestingDeeperThanTheLimitIsRefused() throws {
    let text = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
    let error = try #require(throws: YAMLParseError.self) { try YAMLReader().parse(Array(text.utf8)) }
    #expect(error.problem.contains("nested deeper"))
  }

  /// The drip-feed rule: every prefix of a real listing is read or refused with an error, never
  /// a trap; the names found in a prefix are a subset of the whole listing's.
  @Test func everyPrefixOfTheYAMLListingFailsCleanly() throws {
    let whole = try bytes("captures/affinity-nat/k8s.yaml")
    let all = try KubernetesListing.names(from: whole, path: "k8s.yaml")
    var read = 0
    var refused = 0
    for end in stride(from: 0, through: whole.count, by: 3) {
      do {
        let names = try KubernetesListing.names(from: Array(whole[..<end]), path: "k8s.yaml")
        #expect(names.pods.allSatisfy { all.pods[$0.key] == $0.value })
        read += 1
      } catch {
        #expect(!error.description.isEmpty)
        refused += 1
      }
    }
    #expect(read > 0 && refused > 0)
  }
}
