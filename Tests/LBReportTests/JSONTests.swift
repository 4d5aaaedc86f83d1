import LBReport
import Testing

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
