import LBCore
import LBRules
import Testing

@Test func dumpNFTCorpus() throws {
  for path in DatapathTestSupport.files(in: "nft") {
    let (services, summary) = try NFTRulesReader.read(path: path, input: 0)
    print("=== \(path.split(separator: "/").last ?? "")  records=\(summary.records) t=\(summary.truncated) m=\(summary.malformed) u=\(summary.unsupported) partial=\(summary.partial)")
    for e in summary.examples { print("  issue \(e.kind) \(e.line): \(e.message)") }
    for n in summary.notes { print("  note \(n)") }
    print(DatapathTestSupport.describe(services))
  }
}
