import Foundation
import LBConntrack
import LBCore
import LBLabSupport
import LBLive
import Testing

/// A connection as both sources can describe it: the two tuples and the state.
struct TupleKey: Hashable, CustomStringConvertible {
  var original: FiveTuple
  var translated: FiveTuple
  var state: ConnectionState?
  var description: String { "\(original) => \(translated) \(state?.name ?? "-")" }
}

@Suite(.serialized) struct LiveTableTests {
  @Test(.enabled(if: isRoot, Comment(rawValue: needsRoot)))
  func netlinkDumpEqualsConntrackListTakenAtTheSameMoment() throws {
    let lab = try Lab("dump")
    defer { lab.close() }
    let made = try lab.drive(30)
    #expect(made == 30)

    // The traffic is over: the lab's entries sit in TIME_WAIT. The node itself may still add an
    // entry between two dumps (the bridge's IGMP reports), so the live table is dumped before
    // and after `conntrack -L`: what both live dumps hold must be in the text, and the text
    // may hold nothing that neither live dump saw.
    let table = try NetworkNamespace.run(in: lab.nodePath) { try LiveConntrackTable() }
    var ids: Set<UInt32> = []
    func liveDump() throws -> Set<TupleKey> {
      var keys: Set<TupleKey> = []
      try table.dump { entry in
        guard let o = entry.observation(input: 0) else { return }
        keys.insert(TupleKey(original: o.original, translated: o.translated, state: o.state))
        if let id = entry.id { ids.insert(id) }
      }
      return keys
    }
    let before = try liveDump()
    let listed = try lab.inNode(["conntrack", "-L"])
    let after = try liveDump()
    #expect(listed.status == 0)
    let file = try temporaryDirectory("dump") + "/conntrack-L.txt"
    try listed.stdout.write(toFile: file, atomically: true, encoding: .utf8)
    var text: Set<TupleKey> = []
    _ = try ConntrackReader().read(path: file, input: 0) { o in
      text.insert(TupleKey(original: o.original, translated: o.translated, state: o.state))
    }
    let live = before.intersection(after)
    #expect(!live.isEmpty)
    #expect(live.isSubset(of: text), "only live: \(live.subtracting(text))")
    #expect(text.isSubset(of: before.union(after)), "only text: \(text.subtracting(before.union(after)))")
    let service = live.filter { $0.original.destination == Endpoint(.v4(IPv4Address(10, 96, 0, 10)), 80) }
    #expect(service.count == made)
    #expect(ids.count >= live.count, "each entry carries its conntrack id")
  }

  @Test(.enabled(if: isRoot, Comment(rawValue: needsRoot)))
  func filtersKeepOnlyTheNamedDestinationMarkAndZone() throws {
    let lab = try Lab("filter")
    defer { lab.close() }
    #expect(try lab.drive(6) == 6)
    let table = try NetworkNamespace.run(in: lab.nodePath) { try LiveConntrackTable() }
    let vip = IPAddress.v4(IPv4Address(10, 96, 0, 10))
    var kept = 0
    let sent = try table.dump(filter: ConntrackFilter(destination: vip, destinationPort: 80)) { entry in
      kept += 1
      #expect(entry.original.destination == vip)
    }
    #expect(kept == 6)
    #expect(sent >= kept)
    var wrongPort = 0
    try table.dump(filter: ConntrackFilter(destination: vip, destinationPort: 81)) { _ in wrongPort += 1 }
    #expect(wrongPort == 0)
    var marked = 0
    try table.dump(filter: ConntrackFilter(mark: 0x4000)) { _ in marked += 1 }
    #expect(marked == 0)
    var zoned = 0
    try table.dump(filter: ConntrackFilter(zone: 0)) { _ in zoned += 1 }
    #expect(zoned == sent)
  }

  @Test(.enabled(if: isRoot, Comment(rawValue: needsRoot)))
  func liveCommandReportsTheSameServiceAsTheTextReader() throws {
    let lab = try Lab("cli")
    defer { lab.close() }
    #expect(try lab.drive(12) == 12)
    let live = try lab.inNode([binary, "conntrack", "--live", "-f", "json"])
    #expect(live.status == 0, "\(live.stderr)")
    let listed = try lab.inNode(["conntrack", "-L"])
    let file = try temporaryDirectory("cli") + "/conntrack-L.txt"
    try listed.stdout.write(toFile: file, atomically: true, encoding: .utf8)
    let text = try run(binary, ["conntrack", "-f", "json", file])
    #expect(text.status == 0)
    #expect(live.stdout.contains("\"kind\": \"live-conntrack\""))
    // Everything after the inputs (services, findings, totals) is the same.
    #expect(servicesSection(live.stdout) == servicesSection(text.stdout))
    #expect(servicesSection(live.stdout).contains("\"connections\": 12"))
  }
}

/// The JSON report from `"schemaVersion"` on: services, totals, translated sources.
func servicesSection(_ json: String) -> String {
  guard let start = json.range(of: "\"schemaVersion\"") else { return "" }
  return String(json[start.lowerBound...])
}

@Suite struct PrivilegeTests {
  static let dropped = [
    "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
  ]

  @Test(.enabled(if: isRoot, "needs root to drop privileges with setpriv"))
  func liveConntrackWithoutCapNetAdminExits77WithOneLine() throws {
    let result = try run(Self.dropped[0], Array(Self.dropped.dropFirst()) + [binary, "conntrack", "--live"])
    #expect(result.status == 77)
    #expect(result.stdout.isEmpty)
    let lines = result.stderr.split(separator: "\n")
    #expect(lines.count == 1)
    #expect(result.stderr.contains("CAP_NET_ADMIN"))
    #expect(result.stderr.contains("conntrack -L > dump.txt"))
  }
}
