import Foundation
import LBAnalysis
import LBReport
import Testing

/// Problems in a Markdown report's structure: tables whose rows do not have the header's column
/// count or whose delimiter row is not one; code fences left open; Mermaid blocks that are not a
/// well-formed `pie` (GitHub and GitLab show the source instead of a chart when Mermaid fails).
func markdownProblems(_ text: String) -> [String] {
  var problems: [String] = []
  let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
  func cells(_ line: String) -> [String] {
    var out: [String] = []
    var cell = ""
    var previous: Character = " "
    for ch in line.dropFirst() {
      if ch == "|" && previous != "\\" {
        out.append(cell.trimmingCharacters(in: .whitespaces))
        cell = ""
      } else {
        cell.append(ch)
      }
      previous = ch
    }
    return out
  }
  var i = 0
  while i < lines.count {
    let line = lines[i]
    if line.hasPrefix("```") {
      let language = line.dropFirst(3)
      guard let close = lines[(i + 1)...].firstIndex(where: { $0 == "```" }) else {
        problems.append("line \(i + 1): code fence never closed")
        break
      }
      if language == "mermaid" { problems += mermaidProblems(Array(lines[(i + 1)..<close]), line: i + 2) }
      i = close + 1
      continue
    }
    if line.hasPrefix("|") {
      let header = cells(line)
      guard i + 1 < lines.count, lines[i + 1].hasPrefix("|") else {
        problems.append("line \(i + 1): a table without a delimiter row")
        i += 1
        continue
      }
      let delimiter = cells(lines[i + 1])
      if delimiter.count != header.count {
        problems.append("line \(i + 2): delimiter has \(delimiter.count) cells, header \(header.count)")
      }
      if !delimiter.allSatisfy({ $0.range(of: "^:?-+:?$", options: .regularExpression) != nil }) {
        problems.append("line \(i + 2): not a delimiter row")
      }
      var j = i + 2
      while j < lines.count && lines[j].hasPrefix("|") {
        if cells(lines[j]).count != header.count {
          problems.append(
            "line \(j + 1): \(cells(lines[j]).count) cells where the header has \(header.count)")
        }
        if !lines[j].hasSuffix("|") { problems.append("line \(j + 1): row does not end with |") }
        j += 1
      }
      i = j
      continue
    }
    i += 1
  }
  return problems
}

/// A Mermaid pie: `pie [showData] [title …]`, then `"label" : positive number` lines.
func mermaidProblems(_ body: [String], line: Int) -> [String] {
  guard let first = body.first,
    first.range(of: "^pie( showData)?( title [^\"]+)?$", options: .regularExpression) != nil
  else { return ["line \(line): a Mermaid block must start with `pie`"] }
  var problems: [String] = []
  let slices = body.dropFirst()
  if slices.isEmpty { problems.append("line \(line): a pie without slices") }
  for (k, slice) in slices.enumerated() {
    guard slice.range(of: ##"^\s+"[^"#;]+" : [0-9]+(\.[0-9]+)?$"##, options: .regularExpression) != nil,
      let value = Double(slice.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? ""),
      value > 0
    else {
      problems.append("line \(line + 1 + k): not a pie slice: \(slice)")
      continue
    }
  }
  return problems
}

@Suite struct MarkdownStructureTests {
  let tool = ToolInfo(version: "test")

  @Test(arguments: ["uniform", "affinity-nat"])
  func labReportsAreWellFormed(scenario: String) throws {
    let text = MarkdownReport().render(try labResult(scenario), tool: tool)
    #expect(markdownProblems(text) == [])
    #expect(text.components(separatedBy: "```mermaid\npie showData").count - 1 == 1, "one chart per service")
  }

  @Test func clusterReportIsWellFormed() throws {
    let a = try nodeReport("captures/uniform/conntrack-L.txt", node: "node-a")
    let b = try nodeReport("captures/affinity-nat/conntrack-L.txt", node: "node-b")
    let text = ClusterReport.markdown(ClusterMerger(options: AnalysisOptions()).merge([a, b]), tool: tool)
    #expect(markdownProblems(text) == [])
    #expect(text.contains("```mermaid\npie showData"))
  }

  @Test func everyCommittedMarkdownReportIsWellFormed() throws {
    let reports = root.appendingPathComponent("reports")
    var checked = 0
    let enumerator = FileManager.default.enumerator(atPath: reports.path)
    while let name = enumerator?.nextObject() as? String {
      guard name.hasSuffix(".md") else { continue }
      let text = try String(contentsOf: reports.appendingPathComponent(name), encoding: .utf8)
      #expect(markdownProblems(text) == [], "reports/\(name)")
      checked += 1
    }
    #expect(checked >= 4)
  }

  /// The checker can fail: it finds each kind of damage.
  @Test func theCheckerFindsBrokenTablesAndCharts() {
    #expect(markdownProblems("| a | b |\n|---|---|\n| 1 | 2 | 3 |\n").count == 1)
    #expect(markdownProblems("| a | b |\n|---|\n| 1 | 2 |\n").count == 1)
    #expect(markdownProblems("| a | b |\n| x | y |\n").count == 1)
    #expect(markdownProblems("| a \\| b |\n|---|\n| 1 |\n") == [], "escaped pipes are not columns")
    #expect(markdownProblems("```mermaid\npie showData title x\n```\n").count == 1)
    #expect(markdownProblems("```mermaid\npie title x\n    \"a\" : 0\n```\n").count == 1)
    #expect(markdownProblems("```mermaid\npie title x\n    \"a\"b\" : 3\n```\n").count == 1)
    #expect(markdownProblems("```mermaid\ngraph TD\n```\n").count == 1)
    #expect(markdownProblems("```mermaid\npie\n    \"a\" : 3\n").count == 1)
    #expect(markdownProblems("```mermaid\npie showData title x\n    \"10.0.0.1:80\" : 3\n```\n") == [])
  }
}
