import Foundation
import LBAnalysis
import LBCore
import LBPcap
import Testing

/// Hidden hosts and cookie affinity on the lab's captures, against `truth.json`'s `sources`.
@Suite struct HiddenHostsLabTests {
  struct Truth: Decodable {
    struct Source: Decodable {
      var address: String
      var hosts: Int
    }
    var sources: [Source]
  }

  static func run(_ name: String) throws -> (TraceReader, [String: Int]) {
    let dir = capturesRoot.appendingPathComponent(name)
    let truth = try JSONDecoder().decode(
      Truth.self, from: Data(contentsOf: dir.appendingPathComponent("truth.json")))
    let (_, trace) = try observations([dir.appendingPathComponent("node.pcap").path])
    return (trace, Dictionary(uniqueKeysWithValues: truth.sources.map { ($0.address, $0.hosts) }))
  }

  @Test(arguments: ["affinity-nat", "hidden-hosts"])
  func estimatedHostsEqualTruthPerSource(_ name: String) throws {
    let (trace, hosts) = try Self.run(name)
    for (address, truth) in hosts {
      let e = try #require(trace.hostEstimates.first { $0.address.description == address })
      #expect(e.estimatedHosts == truth, "\(address): \(e.evidence)")
    }
  }

  @Test func cookieAffinityFoundOnTheCookieScenario() throws {
    let (trace, _) = try Self.run("hidden-hosts")
    let cookie = try #require(trace.cookieAffinity.first)
    #expect(cookie.name == "route")
    #expect(cookie.consistency == 1.0)
    #expect(cookie.values == 4)
    let (plain, _) = try Self.run("affinity-nat")
    #expect(plain.cookieAffinity.isEmpty)
  }
}
