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

  @Test func escapesStrings() {
    #expect(JSON.string("a\"b\\c\n\u{1}").rendered() == "\"a\\\"b\\\\c\\n\\u0001\"\n")
  }
}

@Suite struct ClientRenderingTests {
  /// The direct client renderer writes exactly what the generic writer makes of `client(_:)`.
  @Test func rendersClientsAsTheGenericWriterDoes() throws {
    let v4 = try #require(IPAddress("10.244.44.207"))
    let v6 = try #require(IPAddress("fd00::1"))
    let a = try #require(Endpoint("10.244.1.10:80"))
    let b = try #require(Endpoint("10.244.1.9:80"))
    let c = try #require(Endpoint("[fd00::2]:8443"))
    let clients = [
      ClientResult(
        address: v4, connections: 917, backends: [(a, 318), (b, 599)], sticky: false, stickyPValue: 0.609677),
      ClientResult(address: v6, connections: 3, backends: [(c, 3)], sticky: nil, stickyPValue: nil),
      ClientResult(address: v4, connections: 0, backends: [], sticky: true, stickyPValue: 1e-12),
      ClientResult(
        address: v4, connections: 5, backends: [(b, 2), (a, 1), (b, 2)], sticky: true, stickyPValue: 0.5),
    ]
    for client in clients {
      guard case .rendered(let fast) = JSONReport.clientRendered(client) else {
        Issue.record("not rendered")
        continue
      }
      let generic = JSONReport.client(client).renderedBytes(indent: JSONReport.clientIndent)
      #expect(String(decoding: fast, as: UTF8.self) == String(decoding: generic, as: UTF8.self))
    }
  }
}
