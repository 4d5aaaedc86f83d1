import Foundation
import LBCore
import LBRules
import Testing

private typealias S = DatapathTestSupport

private let labDirectory = S.captures.appendingPathComponent("nft-affinity")

private func labTruth() throws -> [String: Any] {
  let data = try Data(contentsOf: labDirectory.appendingPathComponent("truth.json"))
  return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

/// The lab's nftables-mode capture (scripts/lab run nft-affinity): the decoded listing must
/// agree with what the clients saw (truth.json), and the affinity sets with their pins.
@Test(arguments: ["nft-list-table-kube-proxy.txt", "nft-list-ruleset.txt"])
func labNFTListingMatchesTruth(_ file: String) throws {
  let truth = try labTruth()
  let service = try #require(truth["service"] as? [String: Any])
  let nftTruth = try #require(truth["nftAffinity"] as? [String: Any])
  let (services, summary) = try NFTRulesReader.read(
    path: labDirectory.appendingPathComponent(file).path, input: 0)
  #expect(summary.issueCount == 0, "\(summary.examples)")
  #expect(!summary.partial)
  #expect(services.count == 1)
  let svc = try #require(services.first)
  #expect(svc.name == service["name"] as? String)
  #expect(svc.proto == .tcp)
  #expect(
    svc.frontends.map(\.description) == [
      "\(service["clusterIP"] as? String ?? ""):\(service["port"] as? Int ?? 0)"
    ])
  #expect(svc.frontends.first?.kind == .clusterIP)

  let truthBackends = try #require(service["backends"] as? [[String: Any]])
  #expect(svc.backends.map(\.endpoint.description) == truthBackends.compactMap { $0["address"] as? String })
  for (decoded, wanted) in zip(svc.backends, truthBackends) {
    let share = try #require(wanted["expectedShare"] as? Double)
    #expect(abs((decoded.expectedShare ?? -1) - share) < 1e-9)
  }
  let affinity = try #require(service["affinity"] as? [String: Any])
  #expect(svc.affinity?.timeoutSeconds == affinity["timeoutSeconds"] as? Int)
  #expect(svc.affinity?.source == .nft)

  // Pinned clients equal the affinity sets as the clients' own reports predict them.
  let wanted = try #require(nftTruth["pinnedClients"] as? [[String: String]])
  let pins = Set(svc.pinnedClients.map { "\($0.client) -> \($0.backend?.description ?? "?")" })
  #expect(pins == Set(wanted.map { "\($0["client"] ?? "") -> \($0["backend"] ?? "")" }))
  #expect(svc.pinnedClients.count == wanted.count)
  let timeout = Double(affinity["timeoutSeconds"] as? Int ?? 0)
  for pin in svc.pinnedClients {
    let expires = try #require(pin.expiresInSeconds)
    #expect(expires <= timeout && expires > timeout - 120)
    #expect((pin.lastSeenAgeSeconds ?? -1) >= 0)
    #expect(pin.list?.hasPrefix("affinity-") == true)
  }
}

/// The transaction that was loaded describes the same service, with no pins yet.
@Test func labNFTTransactionMatchesTruth() throws {
  let truth = try labTruth()
  let service = try #require(truth["service"] as? [String: Any])
  let (services, summary) = try NFTRulesReader.read(
    path: labDirectory.appendingPathComponent("nft-transaction.nft").path, input: 0)
  #expect(summary.issueCount == 0)
  let svc = try #require(services.first)
  #expect(services.count == 1)
  #expect(svc.name == service["name"] as? String)
  #expect(svc.backends.count == (service["backends"] as? [Any])?.count)
  #expect(svc.backends.allSatisfy { abs(($0.expectedShare ?? 0) - 0.25) < 1e-9 })
  #expect(svc.affinity?.timeoutSeconds == 10800)
  #expect(svc.pinnedClients.isEmpty)
  #expect(svc.masquerade == [.hairpin])
}
