import Foundation
import LBCore
import LBRules

/// Paths and helpers for the nftables and IPVS reader tests (names prefixed so they do not
/// collide with the iptables tests in the same target).
enum DatapathTestSupport {
  /// The repository root, found from this file's path.
  static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()
  static let corpus = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus")
  static let captures = repositoryRoot.appendingPathComponent("captures")

  static func corpusFile(_ directory: String, _ name: String) -> String {
    corpus.appendingPathComponent(directory).appendingPathComponent(name).path
  }

  static func files(in directory: String) -> [String] {
    let url = corpus.appendingPathComponent(directory)
    return ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted()
      .map { url.appendingPathComponent($0).path }
  }

  /// Writes `text` to a temporary file, runs `body` on its path, removes it.
  static func withTemporaryFile<T>(_ text: String, _ body: (String) throws -> T) throws -> T {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("lbscope-dp-\(UUID().uuidString)")
    try Data(text.utf8).write(to: url)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url.path)
  }

  static func service(_ services: [ServiceRule], _ name: String, _ proto: TransportProtocol = .tcp)
    -> ServiceRule?
  {
    services.first { $0.name == name && $0.proto == proto }
  }

  /// A compact text form of services for eyeballing in failures.
  static func describe(_ services: [ServiceRule]) -> String {
    services.map { s in
      let fe = s.frontends.map { "\($0)(\($0.kind.rawValue))" }.joined(separator: ",")
      let be = s.backends.map {
        "\($0.endpoint) share=\($0.expectedShare.map { String($0) } ?? "nil") ext=\($0.expectedShareExternal.map { String($0) } ?? "nil") local=\($0.isLocal.map { String($0) } ?? "nil") w=\($0.weight.map(String.init) ?? "-") conns=\($0.observedConnections.map { String($0) } ?? "-")"
      }.joined(separator: "; ")
      let aff = s.affinity.map { "aff=\($0.timeoutSeconds.map(String.init) ?? "?")" } ?? ""
      let pins = s.pinnedClients.map {
        "\($0.client)->\($0.backend?.description ?? "?") exp=\($0.expiresInSeconds.map { String($0) } ?? "-")"
      }.joined(separator: ",")
      return
        "\(s.name ?? "<nil>") \(s.proto) [\(fe)] policy=\(s.externalTrafficPolicy?.rawValue ?? "nil") noEP=\(s.noEndpoints?.rawValue ?? "-") noLocal=\(s.noLocalEndpoints?.rawValue ?? "-") masq=\(s.masquerade.sorted().map(\.rawValue)) sched=\(s.scheduler ?? "-") \(aff) pins=[\(pins)]\n    \(be)"
    }.joined(separator: "\n")
  }
}
