import LBCore
import Testing

@testable import LBAnalysis

@Suite struct BusiestClientTests {
  /// The busiest `limit` clients, chosen by selection, are exactly the first `limit` of all
  /// clients sorted by connections (descending), then address, for any number of ties at the
  /// cut-off and any mix of address families.
  @Test func selectionEqualsTheFullSortsPrefix() {
    var generator = SplitMix64(seed: 20261123)  // seeded: a failure reproduces
    for round in 0..<60 {
      let n = [0, 1, 5, 50, 400, 3000][round % 6]
      var group = ConnectionAnalyzer.ClientGroup()
      var seen = Set<IPAddress>()
      while group.count < n {
        let address: IPAddress =
          Bool.random(using: &generator)
          ? .v4(IPv4Address(UInt32.random(in: 0...5000, using: &generator)))
          : .v6(
            IPv6Address(
              high: UInt64.random(in: 0...3, using: &generator),
              low: UInt64.random(in: 0...5000, using: &generator)))
        guard seen.insert(address).inserted else { continue }
        group.addresses.append(address)
        // Few distinct counts: many ties at any cut-off.
        group.connections.append(Int32.random(in: 1...(round % 2 == 0 ? 3 : 2000), using: &generator))
      }
      let order = group.addresses.indices.sorted {
        group.connections[$0] != group.connections[$1]
          ? group.connections[$0] > group.connections[$1] : group.addresses[$0] < group.addresses[$1]
      }
      let analyzer = ConnectionAnalyzer()
      for limit in [0, 1, 7, 100, 1000] {
        let picked = analyzer.busiest(group, limit: limit)
        let expected = limit == 0 ? order : Array(order.prefix(limit))
        #expect(picked == expected, "\(n) clients, limit \(limit)")
      }
    }
  }
}
