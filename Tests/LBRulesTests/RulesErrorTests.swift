import LBCore
import LBRules
import Testing

@Test func notRulesErrorNamesTheFormatsLbscopeReads() {
  let error = RulesReaderError(
    code: .notRules, path: "x.txt", line: 3, reason: "no rules found",
    hint: "lbscope rules reads \(RulesReaderError.knownFormats)")
  #expect(error.category == .unrecognizedInput)
  #expect(error.description.hasPrefix("x.txt:3: no rules found; lbscope rules reads iptables-save"))
}
