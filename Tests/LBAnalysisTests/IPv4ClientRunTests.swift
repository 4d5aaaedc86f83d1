import LBCore
import Testing

@testable import LBAnalysis

@Suite struct RadixSortTests {
  /// The radix sort orders keys as the standard library's sort does, for keys with every byte
  /// varying, with a few varying bytes (passes skipped), with duplicates, and at the sizes
  /// around its small-array cut-off.
  @Test func sortsLikeTheStandardSort() {
    var generator = SplitMix64(seed: 20261123)  // seeded: a failure reproduces
    for round in 0..<48 {
      let n = [0, 1, 2, 64, 65, 300, 5000, 40_000][round % 8]
      let shape = round / 8 % 6
      var keys: [UInt64] = []
      for _ in 0..<n {
        let r = generator.next()
        switch shape {
        case 0: keys.append(r)  // every byte varies
        case 1: keys.append(r & 0x0000_FFFF_0000_03FF)  // client bytes and a 10-bit backend
        case 2: keys.append(0x0AF4_0000_0000_0000 | r & 0x0000_FFFF_0000_000F)  // shared prefix
        case 3: keys.append(r % 7)  // many duplicates
        case 4: keys.append(0xDEAD_BEEF)  // all equal
        default: keys.append(UInt64(keys.count) << 20)  // already sorted
        }
      }
      var sorted = keys
      RadixSort.sort(&sorted)
      #expect(sorted == keys.sorted(), "round \(round): \(n) keys, shape \(shape)")
    }
  }
}

@Suite struct IPv4ClientRunTests {
  func connection(client: UInt32, service: UInt32, backend: UInt32) -> IPv4Observation {
    var c = IPv4Observation()
    c.originalSource = 0x0A00_0000 | client
    c.translatedDestination = 0x0AF4_0000 | service << 8 | backend
    c.originalDestination = 0x0A60_0000 | service
    c.translatedSource = c.originalSource
    c.originalSourcePort = 40000
    c.translatedDestinationPort = 8080
    c.originalDestinationPort = 80
    c.translatedSourcePort = 40000
    c.stateCode = ConnectionState.established.rawValue
    c.flags = [.replied, .assured]
    return c
  }

  /// Connections of many clients over three services, seeded; a third of them masqueraded
  /// behind one of three node addresses.
  func connections(_ count: Int) -> [IPv4Observation] {
    var generator = SplitMix64(seed: 7)
    return (0..<count).map { _ in
      let client = UInt32.random(in: 1...400, using: &generator)
      let service = UInt32.random(in: 0...2, using: &generator)
      // Most clients keep to one backend, some spread: stickiness verdicts of both kinds.
      let backend = client % 5 == 0 ? UInt32.random(in: 0...3, using: &generator) : client % 4
      var c = connection(client: client, service: service, backend: backend)
      if client % 3 == 0 { c.translatedSource = 0xC0A8_0A00 | client % 7 % 3 }
      return c
    }
  }

  /// Folding at any points in between (as a long input does at `pendingLimit`) counts what one
  /// fold at the end counts, and both count what the observations added one by one count.
  @Test func foldsAnywhereGiveTheAnalysisOfTheObservations() {
    let list = connections(6000)
    var single = ConnectionAnalyzer()
    for c in list { single.add(c.observation(input: 0)) }
    let expected = digest(single.finish(inputs: []))
    #expect(expected.filter { $0.hasPrefix("translated") }.count == 3)
    for every in [1, 17, 1000, 6000] {
      var folded = ConnectionAnalyzer()
      for (i, c) in list.enumerated() {
        folded.add(c)
        if (i + 1) % every == 0 { folded.foldIPv4Clients() }
      }
      #expect(digest(folded.finish(inputs: [])) == expected, "fold every \(every)")
    }
  }

  /// A client seen through both lanes (a table line the fast path takes and an observation,
  /// for instance an event, that it does not) is one client with the connections of both.
  @Test func bothLanesJoinIntoOneClient() {
    let list = connections(3000)
    var single = ConnectionAnalyzer()
    for c in list { single.add(c.observation(input: 0)) }
    var mixed = ConnectionAnalyzer()
    var other = ConnectionAnalyzer()
    for (i, c) in list.enumerated() {
      switch i % 4 {
      case 0: mixed.add(c.observation(input: 0))
      case 1: mixed.add(c)
      case 2: other.add(c.observation(input: 0))
      default: other.add(c)
      }
    }
    other.finishPart()
    mixed.merge(other)
    #expect(digest(mixed.finish(inputs: [])) == digest(single.finish(inputs: [])))
  }

  /// At the per-service client cap, the IPv4 lane keeps the lowest addresses, whatever the
  /// order they came in and however often it folded; kept clients' counts are complete and every
  /// other connection is counted as dropped.
  @Test func theCapKeepsTheLowestAddresses() throws {
    var options = AnalysisOptions()
    options.maxClientsPerService = 10
    options.clientsKept = 0
    // Clients 30 down to 1, three connections each, one service: high addresses come first.
    var list: [IPv4Observation] = []
    for client in stride(from: UInt32(30), through: 1, by: -1) {
      for backend in UInt32(0)..<3 { list.append(connection(client: client, service: 0, backend: backend)) }
    }
    for every in [3, 20, list.count] {
      var analyzer = ConnectionAnalyzer(options: options)
      for (i, c) in list.enumerated() {
        analyzer.add(c)
        if (i + 1) % every == 0 { analyzer.foldIPv4Clients() }
      }
      let service = try #require(analyzer.finish(inputs: []).services.first)
      #expect(service.connections == 90)
      #expect(service.clientTotals.clients == 10, "fold every \(every)")
      #expect(service.clientTotals.connections == 30, "fold every \(every)")
      #expect(service.droppedClientConnections == 60, "fold every \(every)")
      #expect(
        Set(service.clients.map(\.address))
          == Set((1...10).map { IPAddress.v4(IPv4Address(0x0A00_0000 | $0)) }),
        "fold every \(every)")
      #expect(service.clients.allSatisfy { $0.connections == 3 && $0.backends.count == 3 })
    }
  }

  /// Past `maxSourcesPerTranslatedAddress`, the IPv4 lane keeps the lowest sources and says the
  /// count is a lower bound; at or below it, the count is exact, however often it folded.
  @Test func theSourceCapKeepsTheLowestSources() throws {
    var options = AnalysisOptions()
    options.maxSourcesPerTranslatedAddress = 10
    for (sources, every) in [(30, 7), (30, 1000), (10, 3)] {
      var analyzer = ConnectionAnalyzer(options: options)
      var n = 0
      for client in stride(from: UInt32(sources), through: 1, by: -1) {
        for _ in 0..<2 {
          var c = connection(client: client, service: 0, backend: client % 2)
          c.translatedSource = 0xC0A8_0A0B  // 192.168.10.11
          analyzer.add(c)
          n += 1
          if n % every == 0 { analyzer.foldIPv4Sources() }
        }
      }
      let translated = try #require(analyzer.finish(inputs: []).translatedSources.first)
      #expect(translated.connections == 2 * sources)
      #expect(translated.originalSourceCount == 10, "\(sources) sources, fold every \(every)")
      #expect(translated.originalSourceCountIsLowerBound == (sources > 10), "\(sources) sources")
      #expect(translated.exampleSources == (1...5).map { IPAddress.v4(IPv4Address(0x0A00_0000 | $0)) })
    }
  }

  /// Parts merged at the client cap keep the lowest addresses of all parts, each with the
  /// connections of every part, and count the rest as dropped.
  @Test func mergedPartsKeepTheLowestClientsAtTheCap() throws {
    var options = AnalysisOptions()
    options.maxClientsPerService = 5
    options.clientsKept = 0
    var first = ConnectionAnalyzer(options: options)
    var second = ConnectionAnalyzer(options: options)
    var third = ConnectionAnalyzer(options: options)
    // Clients 6-9 in the first part, 1-7 in the second (two backends each), 4-5 in the third.
    for c in UInt32(6)...9 { first.add(connection(client: c, service: 0, backend: c % 3)) }
    for c in UInt32(1)...7 {
      second.add(connection(client: c, service: 0, backend: c % 3))
      second.add(connection(client: c, service: 0, backend: (c + 1) % 3))
    }
    for c in UInt32(4)...5 { third.add(connection(client: c, service: 0, backend: c % 3)) }
    for part in [second, third] {
      var part = part
      part.finishPart()
      first.merge(part)
    }
    let service = try #require(first.finish(inputs: []).services.first)
    #expect(service.connections == 4 + 14 + 2)
    #expect(service.clientTotals.clients == 5)
    #expect(service.clientTotals.connections + service.droppedClientConnections == service.connections)
    #expect(
      Set(service.clients.map(\.address)) == Set((1...5).map { IPAddress.v4(IPv4Address(0x0A00_0000 | $0)) }))
    let four = try #require(service.clients.first { $0.address == .v4(IPv4Address(10, 0, 0, 4)) })
    #expect(four.connections == 3)
  }
}
