import Foundation
import LBConntrack
import LBCore
import Testing

@testable import LBAnalysis
@testable import LBReport

@Suite struct JSONRenderingTests {
  @Test func sortsKeysAndRoundsDoubles() {
    let value = JSON.object(["b": .double(1.0 / 3), "a": .int(2), "c": .array([.null, .bool(true)])])
    #expect(
      value.rendered() == "{\n  \"a\": 2,\n  \"b\": 0.333333,\n  \"c\": [\n    null,\n    true\n  ]\n}\n")
  }

  @Test func printsDoublesWithoutExponents() {
    #expect(JSON.double(1e-9).rendered() == "0\n")
    #expect(JSON.double(0.25).rendered() == "0.25\n")
    #expect(JSON.double(-2.5).rendered() == "-2.5\n")
    #expect(JSON.double(123456789.0).rendered() == "123456789\n")
    #expect(JSON.double(.nan).rendered() == "null\n")
    #expect(JSON.double(1e20).rendered() == "1e+20\n", "too large for fixed decimals, still valid JSON")
  }

  /// The pieces join to the text `renderedBytes()` gives, and a large part rendered ahead
  /// stands as a piece of its own rather than being copied.
  @Test func piecesJoinToTheRenderedText() throws {
    let large = JSON.array((0..<5000).map { .string("10.0.\($0 / 256).\($0 % 256)") }).renderedBytes(
      indent: 4)
    #expect(large.count >= JSON.sharedPieceSize)
    let value = JSON.object([
      "a": .rendered(large), "b": .array([.int(1), .rendered(Array("[]".utf8)), .rendered(large)]),
      "c": .null,
    ])
    let pieces = value.renderedPieces()
    #expect(Array(pieces.joined()) == value.renderedBytes())
    #expect(pieces.filter { $0 == large }.count == 2)
    let report = JSONReport.document(try labResult("affinity-nat"), tool: ToolInfo(version: "test"))
    #expect(Array(report.renderedPieces().joined()) == report.renderedBytes())
  }

  @Test func escapesStrings() {
    #expect(JSON.string("a\"b\\c\n\u{1}").rendered() == "\"a\\\"b\\\\c\\n\\u0001\"\n")
  }
}

@Suite struct ClientRenderingTests {
  /// The direct client-list renderer writes exactly what the generic writer makes of
  /// `.array(clients.map(client))` where a service's `clients` stands.
  @Test func rendersClientsAsTheGenericWriterDoes() throws {
    let v4 = try #require(IPAddress("10.244.44.207"))
    let v6 = try #require(IPAddress("fd00::1"))
    let mapped = try #require(IPAddress("::ffff:10.0.0.1"))
    let a = try #require(Endpoint("10.244.1.10:80"))
    let b = try #require(Endpoint("10.244.1.9:80"))
    let c = try #require(Endpoint("[fd00::2]:8443"))
    let d = try #require(Endpoint("255.255.255.255:65535"))
    let e = try #require(Endpoint("0.0.0.0:0"))
    let f = try #require(Endpoint("[1234:5678:9abc:def0:1234:5678:9abc:def0]:65535"))
    let g = try #require(Endpoint("10.244.1.10:8"))
    let many = (0..<40).compactMap { Endpoint("10.\($0 % 7).\($0 * 37 % 256).\($0):\(80 + $0 % 3)") }
    let clients = [
      ClientResult(
        address: v4, connections: 917, backends: [(a, 318), (b, 599)], sticky: false, stickyPValue: 0.609677),
      ClientResult(address: v6, connections: 3, backends: [(c, 3)], sticky: nil, stickyPValue: nil),
      ClientResult(address: v4, connections: 0, backends: [], sticky: true, stickyPValue: 1e-12),
      ClientResult(
        address: v4, connections: 5, backends: [(b, 2), (a, 1), (b, 2)], sticky: true, stickyPValue: 0.5),
      ClientResult(
        address: mapped, connections: 9, backends: [(b, 1), (a, 4), (b, 3), (g, 7), (a, 2)], sticky: nil,
        stickyPValue: 123.4567891),
      ClientResult(
        address: v4, connections: -4, backends: [(d, 1), (e, 2), (f, 3), (c, 4), (a, 5)], sticky: false,
        stickyPValue: -0.0000005),
      ClientResult(
        address: v4, connections: Int.max,
        backends: many.map { ($0, Int.min) } + many.reversed().map { ($0, 1) },
        sticky: true, stickyPValue: .infinity),
      ClientResult(address: v6, connections: 1, backends: [(a, 1)], sticky: false, stickyPValue: .nan),
    ]
    for client in clients {
      expectSameAsGeneric([client])
    }
    expectSameAsGeneric(clients[...])
    expectSameAsGeneric([])
  }

  /// Every service of every lab capture and conntrack corpus file, rendered both ways.
  @Test func rendersRealClientListsAsTheGenericWriterDoes() throws {
    var services = 0
    for result in try realResults() {
      for service in result.services {
        expectSameAsGeneric(service.clients[...])
        services += 1
      }
    }
    #expect(services > 10)
  }

  /// The `stickyPValue` doubles, including those `JSON.formatDouble` rounds away, prints as
  /// `null` or in exponent form.
  @Test func rendersEveryKindOfDoubleAsTheGenericWriterDoes() throws {
    let address = try #require(IPAddress("192.0.2.1"))
    let values: [Double] = [
      0, -0.0, 1, -1, 1e-7, -1e-7, 4.9e-7, 5e-7, 0.5, -2.5, 0.25, 1.0 / 3, 123.4567891, 0.1234565,
      999_999.9999999, 123_456_789, 8.99e12, 9e12, 1e13, 1e20, -1e20, .nan, .infinity, -.infinity,
      .greatestFiniteMagnitude, .leastNonzeroMagnitude,
    ]
    expectSameAsGeneric(
      values.map {
        ClientResult(address: address, connections: 1, backends: [], sticky: nil, stickyPValue: $0)
      }[...])
  }

  private func expectSameAsGeneric(
    _ clients: ArraySlice<ClientResult>, sourceLocation: Testing.SourceLocation = #_sourceLocation
  ) {
    guard case .rendered(let fast) = JSONReport.clientsRendered(clients) else {
      Issue.record("not rendered", sourceLocation: sourceLocation)
      return
    }
    let generic = JSON.array(clients.map(JSONReport.client)).renderedBytes(
      indent: JSONReport.clientIndent - 2)
    #expect(
      String(decoding: fast, as: UTF8.self) == String(decoding: generic, as: UTF8.self),
      sourceLocation: sourceLocation)
  }
}

/// The analysis of every lab capture's `conntrack -L` dump and of every dump in
/// `../shared/corpus/conntrack` (those the reader takes), each on its own.
func realResults() throws -> [AnalysisResult] {
  let captures = root.appendingPathComponent("captures")
  let corpus = root.deletingLastPathComponent().appendingPathComponent("shared/corpus/conntrack")
  var paths = try FileManager.default.contentsOfDirectory(atPath: captures.path).sorted().map {
    captures.appendingPathComponent("\($0)/conntrack-L.txt").path
  }.filter { FileManager.default.fileExists(atPath: $0) }
  paths += ((try? FileManager.default.contentsOfDirectory(atPath: corpus.path)) ?? []).sorted().map {
    corpus.appendingPathComponent($0).path
  }
  return paths.compactMap { path in
    var analyzer = ConnectionAnalyzer()
    guard let summary = try? ConntrackReader().read(path: path, input: 0, observe: { analyzer.add($0) })
    else { return nil }
    return analyzer.finish(inputs: [summary])
  }
}
