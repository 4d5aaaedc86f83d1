import Foundation
import LBReport
import Testing

func parse(_ text: String) throws(JSONParseError) -> JSON {
  try JSONParser().parse(Array(text.utf8))
}

func parseError(_ text: String) -> JSONParseError? {
  do {
    _ = try parse(text)
    return nil
  } catch {
    return error
  }
}

@Suite struct JSONParserTests {
  @Test func readsEveryKindOfValue() throws {
    let value = try parse(
      #" { "a": [1, -2, 0, -0.5, 2.5e3, 1E-2, 9223372036854775807, 9223372036854775808], "b": {"c": null},"#
        + #" "d": true, "e": false, "f": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "g": [], "h": {} } "#)
    #expect(
      value
        == .object([
          "a": .array([
            .int(1), .int(-2), .int(0), .double(-0.5), .double(2500), .double(0.01), .int(Int64.max),
            .double(9_223_372_036_854_775_808),
          ]),
          "b": .object(["c": .null]), "d": .bool(true), "e": .bool(false),
          "f": .string("x\"\\/\u{8}\u{c}\n\r\té😀"), "g": .array([]), "h": .object([:]),
        ]))
  }

  /// What lbscope writes, it reads back to the same tree: rendering the parse gives the bytes.
  @Test(arguments: ["reports/affinity-nat/conntrack.json", "reports/uniform/conntrack.json"])
  func roundTripsCommittedReports(path: String) throws {
    let bytes = Array(try Data(contentsOf: root.appendingPathComponent(path)))
    let value = try JSONParser().parse(bytes, path: path)
    #expect(value.renderedBytes() == bytes)
  }

  /// Every proper prefix of a valid text fails cleanly, at an offset inside the prefix.
  @Test func everyPrefixOfAValidTextFails() throws {
    let small = Array(
      #"{"a": [1, -2.5e-3, true, false, null, "x\u00e9\ud83d\ude00y"], "b": {"c": {}}, "d": []}"#.utf8)
    let report = Array(
      try Data(contentsOf: root.appendingPathComponent("reports/affinity-nat/conntrack.json")))
    for (text, step) in [(small, 1), (Array(report.dropLast()), 37)] {
      _ = try JSONParser().parse(text)
      for length in stride(from: 0, to: text.count, by: step) {
        do {
          _ = try JSONParser().parse(Array(text[..<length]))
          Issue.record("a prefix of \(length) bytes parsed")
        } catch {
          #expect(error.offset <= length)
        }
      }
    }
  }

  @Test(arguments: [
    ("", 0, "the text ends where a value was expected"),
    ("{", 1, "the text ends inside an object"),
    ("[1,]", 3, "expected a value, found byte 0x5d"),
    ("{\"a\":1,}", 7, "expected a member name in quotes"),
    ("{\"a\" 1}", 5, "expected ':'"),
    ("{\"a\":1 \"b\":2}", 7, "expected ',' or '}'"),
    ("[1 2]", 3, "expected ',' or ']'"),
    ("{\"a\":1,\"a\":2}", 7, "the member name \"a\" appears twice"),
    ("01", 1, "a number may not have a leading zero"),
    ("-", 1, "expected a digit"),
    ("1.", 2, "expected a digit after '.'"),
    (".5", 0, "expected a value, found byte 0x2e"),
    ("1e", 2, "expected a digit in the exponent"),
    ("1e999", 0, "the number is out of range"),
    ("NaN", 0, "expected a value, found byte 0x4e"),
    ("tru", 3, "the text ends inside `true`"),
    ("nul1", 3, "expected `null`"),
    ("\"a\nb\"", 2, "a control character inside a string must be escaped"),
    ("\"\\x\"", 1, "an unknown escape \\x"),
    ("\"\\u12g4\"", 5, "expected four hex digits after \\u"),
    ("\"\\ud83d\"", 7, "a lone surrogate in \\u escape"),
    ("\"\\ude00\"", 7, "a lone surrogate in \\u escape"),
    ("\"abc", 0, "the text ends inside a string"),
    ("{} {}", 3, "unexpected text after the value"),
    ("// no\n{}", 0, "expected a value, found byte 0x2f"),
  ])
  func rejectsMalformedTextAtItsOffset(text: String, offset: Int, problem: String) {
    let error = parseError(text)
    #expect(error?.offset == offset, "\(text)")
    #expect(error?.problem == problem, "\(text)")
  }

  @Test func rejectsInvalidUTF8() {
    #expect(throws: JSONParseError.self) { try JSONParser().parse([0x22, 0xC3, 0x28, 0x22]) }
    #expect(throws: JSONParseError.self) { try JSONParser().parse([0x22, 0xED, 0xA0, 0x80, 0x22]) }
  }

  @Test func limitsDepthWithoutExhaustingTheStack() throws {
    let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
    _ = try parse(ok)
    let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
    #expect(parseError(tooDeep)?.offset == 64)
    let hostile = String(repeating: "{\"a\":", count: 200_000)
    #expect(parseError(hostile)?.problem == "nested deeper than 64 levels")
  }

  @Test func limitsSize() {
    var parser = JSONParser()
    parser.maximumSize = 10
    #expect(throws: JSONParseError.self) { try parser.parse(Array("[1, 2, 3, 4, 5]".utf8)) }
    #expect((try? parser.parse(Array("[1, 2, 3]".utf8))) != nil)
  }

  @Test func errorsSayWhereInOneLine() {
    do {
      _ = try JSONParser().parse(Array("{\n  \"a\": 1,\n  \"b\": x\n}".utf8), path: "node-a.json")
      Issue.record("parsed")
    } catch {
      #expect(
        error.description
          == "node-a.json:3: not valid JSON at byte 19: expected a value, found byte 0x78; give a JSON report written by `lbscope … --format json`"
      )
    }
  }
}
