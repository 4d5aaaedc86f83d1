import Foundation
import LBCore
import LBRules

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()
let corpusRoot = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus")
let capturesRoot = repositoryRoot.appendingPathComponent("captures")

func files(in directory: URL) -> [URL] {
  ((try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? [])
    .sorted { $0.path < $1.path }
}

/// A lab capture's truth.json, as loosely typed JSON.
func truth(_ scenario: String) throws -> [String: Any] {
  let data = try Data(
    contentsOf: capturesRoot.appendingPathComponent(scenario).appendingPathComponent("truth.json"))
  return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
}

/// Services of an iptables-save text, through the real parser and builder.
func services(_ text: String) -> ([ServiceRule], InputSummary) {
  let (dump, summary) = IptablesSaveReader.read(text: text)
  return (IptablesServices(dump: dump, input: 0).services(), summary)
}

func service(named name: String, in services: [ServiceRule]) -> ServiceRule? {
  services.first { $0.name == name }
}
