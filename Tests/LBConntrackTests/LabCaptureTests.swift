import Foundation
import LBConntrack
import LBCore
import Testing

/// The lab's captures (made on a real kernel by `scripts/lab`): every conntrack format of one
/// moment must give the same connections, and those must match what the clients saw.
@Suite struct LabCaptureTests {
  static let scenarios = ["uniform", "affinity-nat"]

  /// Per-backend counts computed independently of the reader: split on spaces, take the
  /// second `src=` and `sport=` of lines whose first `dst=` is the Service address.
  static func countsByHand(_ path: String, vip: String) throws -> [String: Int] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var counts: [String: Int] = [:]
    for line in text.split(separator: "\n") {
      let fields = line.split(separator: " ").filter { $0.contains("=") }
      let src = fields.filter { $0.hasPrefix("src=") }.map { $0.dropFirst(4) }
      let dst = fields.filter { $0.hasPrefix("dst=") }.map { $0.dropFirst(4) }
      let sport = fields.filter { $0.hasPrefix("sport=") }.map { $0.dropFirst(6) }
      guard src.count == 2, dst.first.map(String.init) == vip, sport.count == 2 else { continue }
      counts["\(src[1]):\(sport[1])", default: 0] += 1
    }
    return counts
  }

  static func countsFromReader(_ path: String) throws -> [String: Int] {
    var counts: [String: Int] = [:]
    _ = try ConntrackReader().read(path: path, input: 0) { o in
      if o.isDestinationTranslated { counts[o.backend.description, default: 0] += 1 }
    }
    return counts
  }

  @Test(arguments: scenarios)
  func readerCountsMatchTheDumpExactly(_ scenario: String) throws {
    let folder = capturesRoot.appendingPathComponent(scenario)
    let path = folder.appendingPathComponent("conntrack-L.txt").path
    let byHand = try Self.countsByHand(path, vip: "10.96.0.10")
    #expect(!byHand.isEmpty)
    #expect(try Self.countsFromReader(path) == byHand)
  }

  @Test(arguments: scenarios)
  func everyFormatOfTheSameMomentAgrees(_ scenario: String) throws {
    let folder = capturesRoot.appendingPathComponent(scenario)
    let plain = try Self.countsFromReader(folder.appendingPathComponent("conntrack-L.txt").path)
    for name in ["conntrack-L-extended.txt", "conntrack-L.xml", "nf_conntrack.txt", "conntrack-E.txt"] {
      let other = try Self.countsFromReader(folder.appendingPathComponent(name).path)
      #expect(other == plain, "\(scenario)/\(name)")
    }
  }

  @Test(arguments: scenarios)
  func dumpAgreesWithWhatTheClientsSaw(_ scenario: String) throws {
    let folder = capturesRoot.appendingPathComponent(scenario)
    let truth =
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: folder.appendingPathComponent("truth.json"))) as? [String: Any]
    let seen = try #require(truth?["backends"] as? [String: Int]).filter { $0.value > 0 }
    let counts = try Self.countsFromReader(folder.appendingPathComponent("conntrack-L.txt").path)
    #expect(counts == seen)
  }

  @Test func gatewayTablesShowTheSNATCollapse() throws {
    let folder = capturesRoot.appendingPathComponent("affinity-nat/gateways")
    let tables = files(in: folder)
    #expect(tables.count == 3)
    for table in tables {
      var sources: [IPAddress: Set<IPAddress>] = [:]
      _ = try ConntrackReader().read(path: table.path, input: 0) { o in
        if o.isSourceTranslated {
          sources[o.translated.source.address, default: []].insert(o.original.source.address)
        }
      }
      #expect(sources.count == 1, "\(table.lastPathComponent): one gateway address")
      #expect(sources.values.first?.count == 3, "\(table.lastPathComponent): three hidden hosts")
    }
  }
}
