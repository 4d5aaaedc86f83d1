import LBAnonymize
import LBCore
import Testing

/// A small deterministic generator (SplitMix64), so failures reproduce.
struct SplitMix: RandomNumberGenerator {
  var state: UInt64
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

func commonPrefix(_ a: UInt32, _ b: UInt32) -> Int { (a ^ b).leadingZeroBitCount }
func commonPrefix(_ a: IPv6Address, _ b: IPv6Address) -> Int {
  a.high != b.high ? (a.high ^ b.high).leadingZeroBitCount : 64 + (a.low ^ b.low).leadingZeroBitCount
}

let key = Array("a test key of thirty-two bytes!!".utf8)

@Suite struct PrefixPreservationTests {
  let anonymizer = PrefixPreservingAnonymizer(key: key)

  @Test func ipv4PairsKeepExactlyTheirSharedPrefixLength() {
    var random = SplitMix(state: 1)
    for n in 0...32 {
      for _ in 0..<8 {
        let a = UInt32.random(in: .min ... .max, using: &random)
        // b shares exactly n leading bits with a (all 32 when n is 32).
        var b = a
        if n < 32 {
          let flip = UInt32(1) << UInt32(31 - n)
          let lowMask = flip - 1
          b = (a ^ flip) & ~lowMask | UInt32.random(in: .min ... .max, using: &random) & lowMask
        }
        #expect(commonPrefix(a, b) == n)
        let x = anonymizer.anonymize(IPv4Address(a)).value
        let y = anonymizer.anonymize(IPv4Address(b)).value
        #expect(commonPrefix(x, y) == n, "\(IPv4Address(a)) and \(IPv4Address(b))")
      }
    }
  }

  @Test func ipv6PairsKeepExactlyTheirSharedPrefixLength() {
    var random = SplitMix(state: 2)
    for n in stride(from: 0, through: 128, by: 3) {
      let a = IPv6Address(
        high: UInt64.random(in: .min ... .max, using: &random),
        low: UInt64.random(in: .min ... .max, using: &random))
      var b = a
      if n < 64 {
        let flip = UInt64(1) << UInt64(63 - n)
        b.high = (a.high ^ flip) & ~(flip - 1) | UInt64.random(in: .min ... .max, using: &random) & (flip - 1)
        b.low = UInt64.random(in: .min ... .max, using: &random)
      } else if n < 128 {
        let flip = UInt64(1) << UInt64(127 - n)
        b.low = (a.low ^ flip) & ~(flip - 1) | UInt64.random(in: .min ... .max, using: &random) & (flip - 1)
      }
      guard a.mappedIPv4 == nil, b.mappedIPv4 == nil else { continue }
      #expect(commonPrefix(a, b) == n)
      #expect(commonPrefix(anonymizer.anonymize(a), anonymizer.anonymize(b)) == n, "\(a) and \(b)")
    }
  }

  @Test func pseudonymsDependOnTheKeyAndOnlyOnIt() throws {
    let other = PrefixPreservingAnonymizer(key: Array("another key of thirty-two bytes!".utf8))
    let addresses = ["10.96.0.10", "10.244.1.2", "192.168.50.21", "2001:db8::1", "fd00:10:96::a"]
    for text in addresses {
      let address = try #require(IPAddress(text))
      let once = anonymizer.anonymize(address)
      #expect(once == PrefixPreservingAnonymizer(key: key).anonymize(address), "same key, same pseudonym")
      #expect(once != address)
      #expect(other.anonymize(address) != once, "\(text): another key, another pseudonym")
    }
  }

  @Test func distinctAddressesGetDistinctPseudonyms() {
    // The map is a bijection per prefix tree: 1024 neighbours map to 1024 pseudonyms.
    var seen = Set<UInt32>()
    for i in 0..<UInt32(1024) { seen.insert(anonymizer.anonymize(IPv4Address(0x0AF4_0000 | i)).value) }
    #expect(seen.count == 1024)
  }

  @Test func mappedIPv4KeepsItsFormAndTheIPv4Pseudonym() throws {
    let mapped = try #require(IPv6Address("::ffff:10.0.0.1"))
    let v4 = try #require(IPv4Address("10.0.0.1"))
    #expect(anonymizer.anonymize(mapped).mappedIPv4 == anonymizer.anonymize(v4))
  }
}

@Suite struct TextAnonymizerTests {
  func pseudonym(_ text: String) -> String {
    PrefixPreservingAnonymizer(key: key).anonymize(IPAddress(text) ?? .v4(IPv4Address(0))).description
  }

  @Test func replacesAddressesInEveryNotationAndKeepsWhatSurroundsThem() {
    var text = TextAnonymizer(key: key)
    let a = pseudonym("10.244.1.5")
    let b = pseudonym("fd00::5")
    let cases: [(String, String)] = [
      ("10.244.1.5", a),
      ("10.244.1.5:8080", "\(a):8080"),
      ("[fd00::5]:80", "[\(b)]:80"),
      ("fd00::5", b),
      ("10.244.1.5/24", "\(a)/24"),
      ("`10.244.1.5`", "`\(a)`"),
      ("| `10.244.1.5:80` | 3 |", "| `\(a):80` | 3 |"),
      ("src=10.244.1.5 dst=fd00::5", "src=\(a) dst=\(b)"),
      ("reach 10.244.1.5.", "reach \(a)."),
      ("10.244.1.5: refused", "\(a): refused"),
      ("\"10.244.1.5:8080\": 3", "\"\(a):8080\": 3"),
      ("ab10.244.1.5", "ab\(a)"),
      ("x:10.244.1.5", "x:\(a)"),
      ("fd00::5%eth0", "\(b)%eth0"),
      ("10.244.1.5 → 10.244.1.5:80 ×45", "\(a) → \(a):80 ×45"),
    ]
    for (input, expected) in cases {
      #expect(text.anonymize(input) == expected, "\(input)")
    }
  }

  @Test func leavesTextWithoutAddressesAlone() {
    var text = TextAnonymizer(key: key)
    for input in [
      "p < 0.0001, w 0.68, 63.6%", "12:34:56", "lbscope 0.1.0", "χ² 76.36 (df 2)", "deadbeef", "**Fix:** a",
      "10.0.0.256", "1.2.3", "sha256:abcdef0123", "{\"a\": 1}", "10.0.0.1234",
    ] {
      #expect(text.anonymize(input) == input, "\(input)")
    }
  }

  @Test func hashesNamesOnlyWhenAskedAndOnlyWholeWords() {
    var kept = TextAnonymizer(key: key)
    #expect(kept.anonymize("payments/checkout:http") == "payments/checkout:http")
    var hashed = TextAnonymizer(key: key, hashNames: ["payments/checkout:http", "payments/checkout-7d9f"])
    let ns = hashed.namePseudonym("payments")
    let svc = hashed.namePseudonym("checkout")
    let pod = hashed.namePseudonym("checkout-7d9f")
    #expect(hashed.anonymize("payments/checkout:http") == "\(ns)/\(svc):http")
    #expect(hashed.anonymize("pod payments/checkout-7d9f.") == "pod \(ns)/\(pod).")
    #expect(hashed.anonymize("checkouts and paymentsx") == "checkouts and paymentsx")
    #expect(ns.hasPrefix("n-") && ns.count == 12)
    #expect(
      TextAnonymizer(key: Array("another key of thirty-two bytes!".utf8)).namePseudonym("payments") != ns)
  }
}
