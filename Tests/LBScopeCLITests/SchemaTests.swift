import Foundation
import Testing

/// `python3` with the `jsonschema` module: the oracle for `schema/report.schema.json`.
let jsonschemaAvailable: Bool = {
  (try? runTool("/usr/bin/env", ["python3", "-c", "import jsonschema"]).status) == 0
}()

func runTool(_ executable: String, _ arguments: [String]) throws -> Run {
  try runProcess(URL(fileURLWithPath: executable), arguments)
}

/// Checks the schema itself against draft 2020-12, then validates each file; prints one line
/// per error and exits 1 when there is any.
let validator = """
  import json, sys, jsonschema
  schema = json.load(open(sys.argv[1]))
  jsonschema.Draft202012Validator.check_schema(schema)
  v = jsonschema.Draft202012Validator(schema)
  bad = 0
  for path in sys.argv[2:]:
      for e in v.iter_errors(json.load(open(path))):
          bad += 1
          print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
  sys.exit(1 if bad else 0)
  """

func validate(_ paths: [String]) throws -> Run {
  try runTool("/usr/bin/env", ["python3", "-c", validator, "schema/report.schema.json"] + paths)
}

/// Writes text to a temporary file and returns its path.
func temporaryFile(_ text: String, name: String) throws -> String {
  let path = temporaryPath(name)
  try Data(text.utf8).write(to: URL(fileURLWithPath: path))
  return path
}

@Suite(
  .enabled(
    if: jsonschemaAvailable,
    "python3 with the jsonschema module is missing: run scripts/bootstrap (apt package python3-jsonschema)"))
struct SchemaTests {
  @Test func everyCommittedJSONReportValidates() throws {
    let reports = repository.appendingPathComponent("reports")
    let enumerator = FileManager.default.enumerator(atPath: reports.path)
    var paths: [String] = []
    while let name = enumerator?.nextObject() as? String {
      if name.hasSuffix(".json") { paths.append("reports/" + name) }
    }
    try #require(paths.count >= 2)
    let run = try validate(paths.sorted())
    #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
  }

  @Test func everyReportTheTestsProduceValidates() throws {
    var produced: [String] = []
    defer { for path in produced { try? FileManager.default.removeItem(atPath: path) } }
    let corpus = repository.deletingLastPathComponent().appendingPathComponent("shared/corpus/conntrack")
    let corpusFiles = ((try? FileManager.default.contentsOfDirectory(atPath: corpus.path)) ?? []).sorted().map
    {
      corpus.appendingPathComponent($0).path
    }
    let runs: [[String]] =
      [
        ["conntrack", "captures/affinity-nat/conntrack-E.txt", "--format", "json"],
        ["conntrack", "captures/affinity-nat/conntrack-L.xml", "--format", "json", "--json-clients", "0"],
        ["conntrack", "captures/uniform/conntrack-L.txt", "--format", "json", "--anonymize"],
      ] + corpusFiles.map { ["conntrack", $0, "--format", "json"] }
    for (i, arguments) in runs.enumerated() {
      let run = try lbscope(arguments, environment: ["LBSCOPE_ANONYMIZE_KEY": testKey])
      guard [0, 65].contains(run.status) else { continue }  // inputs lbscope does not read
      produced.append(try temporaryFile(run.stdout, name: "report-\(i).json"))
    }
    #expect(produced.count >= 10)
    let run = try validate(produced)
    #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
  }

  /// The validation can fail: a report that breaks the contract is rejected, field by field.
  @Test func aReportThatBreaksTheContractIsRejected() throws {
    let good = try String(
      contentsOf: repository.appendingPathComponent("reports/affinity-nat/conntrack.json"), encoding: .utf8)
    let breakages: [(String, String)] = [
      ("\"schemaVersion\": 1", "\"schemaVersion\": 2"),
      ("\"kind\": \"conntrack\"", "\"kind\": \"csv\""),
      ("\"connections\": 15", "\"connections\": -15"),
      ("\"address\": \"10.244.1.2:8080\"", "\"address\": \"10.244.1.2\""),
      ("\"severity\": \"warning\"", "\"severity\": \"urgent\""),
      ("\"observedShare\": 0.090909", "\"observedShare\": 1.5"),
      ("\"pod\": null", "\"pods\": null"),
    ]
    var paths: [String] = []
    defer { for path in paths { try? FileManager.default.removeItem(atPath: path) } }
    for (i, (from, to)) in breakages.enumerated() {
      try #require(good.contains(from), "\(from)")
      let broken = try temporaryFile(good.replacingOccurrences(of: from, with: to), name: "broken-\(i).json")
      paths.append(broken)
      let run = try validate([broken])
      #expect(run.status == 1, "\(to) should break the schema")
    }
  }
}
