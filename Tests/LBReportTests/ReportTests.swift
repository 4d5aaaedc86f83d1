import Foundation
import LBAnalysis
import LBConntrack
import LBCore
import LBReport
import Testing

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent()

func labResult(_ scenario: String) throws -> AnalysisResult {
  var analyzer = ConnectionAnalyzer()
  let path = "captures/\(scenario)/conntrack-L.txt"
  let summary = try ConntrackReader().read(path: root.appendingPathComponent(path).path, input: 0) {
    analyzer.add($0)
  }
  var named = summary
  named.path = path
  return analyzer.finish(inputs: [named])
}

@Suite struct ReportTests {
  let tool = ToolInfo(version: "test")

  @Test func sameInputGivesByteIdenticalReports() throws {
    let a = try labResult("affinity-nat")
    let b = try labResult("affinity-nat")
    #expect(JSONReport.render(a, tool: tool) == JSONReport.render(b, tool: tool))
    #expect(MarkdownReport().render(a, tool: tool) == MarkdownReport().render(b, tool: tool))
  }

  @Test func jsonCarriesTheContractFields() throws {
    let text = JSONReport.render(try labResult("affinity-nat"), tool: tool)
    let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    #expect(object["schemaVersion"] as? Int == 1)
    for key in ["tool", "inputs", "services", "translatedSources", "findings"] {
      #expect(object[key] != nil, "\(key)")
    }
    let service = try #require((object["services"] as? [[String: Any]])?.first)
    for key in [
      "name", "frontends", "protocol", "affinity", "externalTrafficPolicy", "backends", "clients",
      "distribution",
    ] {
      #expect(service.keys.contains(key), "service.\(key)")
    }
    let backend = try #require((service["backends"] as? [[String: Any]])?.first)
    for key in [
      "address", "pod", "expectedShare", "expectedShareExternal", "connections", "observedShare",
      "failedConnections", "packets", "bytes", "pinnedClients",
    ] {
      #expect(backend.keys.contains(key), "backend.\(key)")
    }
    let distribution = try #require(service["distribution"] as? [String: Any])
    for key in ["metric", "maxMinRatio", "coefficientOfVariation", "pValue", "imbalanced"] {
      #expect(distribution.keys.contains(key), "distribution.\(key)")
    }
    let addresses = try #require(service["backends"] as? [[String: Any]]).compactMap {
      $0["address"] as? String
    }
    #expect(addresses == addresses.sorted { Endpoint($0)! < Endpoint($1)! })
  }

  /// Pins the Markdown layout. Re-record with LBSCOPE_RECORD_GOLDEN=1 and review the diff.
  @Test func markdownMatchesTheGoldenFile() throws {
    let text = MarkdownReport().render(try labResult("affinity-nat"), tool: tool)
    let golden = root.appendingPathComponent("Tests/LBReportTests/Golden/affinity-nat.md")
    if ProcessInfo.processInfo.environment["LBSCOPE_RECORD_GOLDEN"] == "1" {
      try FileManager.default.createDirectory(
        at: golden.deletingLastPathComponent(), withIntermediateDirectories: true)
      try Data(text.utf8).write(to: golden)
    }
    let expected = try String(contentsOf: golden, encoding: .utf8)
    #expect(text == expected)
  }

  @Test func markdownTablesHaveConsistentColumns() throws {
    let text = MarkdownReport().render(try labResult("affinity-nat"), tool: tool)
    var columns: Int? = nil
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      guard line.hasPrefix("|") else {
        columns = nil
        continue
      }
      // Count unescaped pipes.
      var count = 0
      var previous: Character = " "
      for ch in line {
        if ch == "|" && previous != "\\" { count += 1 }
        previous = ch
      }
      if let columns { #expect(count == columns, "\(line)") } else { columns = count }
    }
  }
}
