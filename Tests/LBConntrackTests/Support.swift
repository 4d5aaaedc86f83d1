import Foundation
import LBConntrack
import LBCore

func parseLine(_ text: String, number: Int = 1) -> ConntrackLine {
  var text = text
  return text.withUTF8 { ConntrackLineParser.parse(UnsafeRawBufferPointer($0), number: number) }
}

func entry(_ outcome: ConntrackLine) -> ConntrackEntry? {
  switch outcome {
  case .entry(let e), .recovered(let e, _): e
  default: nil
  }
}

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()
let corpusRoot = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus")
let capturesRoot = repositoryRoot.appendingPathComponent("captures")

/// Reads text through the real reader, via a temporary file.
func readText(_ text: String) throws -> (InputSummary, [ConnectionObservation]) {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("lbscope-test-\(UUID().uuidString)")
  try Data(text.utf8).write(to: url)
  defer { try? FileManager.default.removeItem(at: url) }
  return try readFile(url.path)
}

func readFile(_ path: String) throws -> (InputSummary, [ConnectionObservation]) {
  var observations: [ConnectionObservation] = []
  let summary = try ConntrackReader().read(path: path, input: 0) { observations.append($0) }
  return (summary, observations)
}

func files(in directory: URL) -> [URL] {
  ((try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? [])
    .sorted { $0.path < $1.path }
}
