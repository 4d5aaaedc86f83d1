import Foundation
import Testing

/// `lbscope report --k8s` with the YAML listing: the same report as with the JSON listing, and
/// damage as one located line with exit 66.
struct KubernetesYAMLCLITests {
  static let inputs = [
    "captures/affinity-nat/conntrack-L.txt", "captures/affinity-nat/iptables-save.txt",
    "captures/affinity-nat/xt_recent", "captures/affinity-nat/node.pcap",
  ]

  @Test(arguments: ["json", "markdown"])
  func yamlAndJSONListingsGiveTheSameReport(_ format: String) throws {
    let json = try lbscope(
      ["report"] + Self.inputs + ["--k8s", "captures/affinity-nat/k8s.json", "-f", format])
    let yaml = try lbscope(
      ["report"] + Self.inputs + ["--k8s", "captures/affinity-nat/k8s.yaml", "-f", format])
    #expect(json.status == 1 || json.status == 0, "\(json.stderr)")
    #expect(yaml.status == json.status, "\(yaml.stderr)")
    #expect(yaml.stdout == json.stdout)
    // The names really come from the listing: without it the Pods are unnamed.
    #expect(yaml.stdout.contains("lab/web-0"))
    let bare = try lbscope(["report"] + Self.inputs + ["-f", format])
    #expect(!bare.stdout.contains("lab/web-0"))
  }

  @Test func yamlSavedUnderAJSONNameIsReadByContent() throws {
    let path = temporaryPath("cluster.json")
    try FileManager.default.copyItem(
      at: repository.appendingPathComponent("captures/affinity-nat/k8s.yaml"), to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let run = try lbscope(["report", "captures/affinity-nat/conntrack-L.txt", "--k8s", path, "-f", "json"])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("\"lab/web-0\""))
  }

  @Test func malformedYAMLIsOneLocatedLineAndExit66() throws {
    let path = temporaryPath("bad.yaml")
    try "apiVersion: v1\nitems:\n- kind: Pod\n  metadata: {name: web-0\nkind: List\n".write(
      toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let run = try lbscope(["report", "captures/affinity-nat/conntrack-L.txt", "--k8s", path])
    #expect(run.status == 66)
    #expect(run.stdout.isEmpty)
    let lines = run.stderr.split(separator: "\n")
    #expect(lines.count == 1, "\(run.stderr)")
    // libyaml notices the unclosed `{` of line 4 on line 5, and says where it started.
    #expect(run.stderr.hasPrefix("lbscope: \(path):5: not valid YAML"), "\(run.stderr)")
    #expect(run.stderr.contains("(started on line 4)"), "\(run.stderr)")
    #expect(run.stderr.contains("; save it with `kubectl get pods,services,endpointslices -A -o json"))
  }

  @Test func malformedJSONListingNamesItsLineToo() throws {
    let path = temporaryPath("bad.json")
    try "{\n  \"kind\": \"List\",\n  \"items\": [,]\n}\n".write(
      toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let run = try lbscope(["report", "captures/affinity-nat/conntrack-L.txt", "--k8s", path])
    #expect(run.status == 66)
    #expect(run.stderr.hasPrefix("lbscope: \(path):3: not valid JSON"), "\(run.stderr)")
  }
}
