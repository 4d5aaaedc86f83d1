import LBAnonymize
import Testing

func hex(_ bytes: [UInt8]) -> String {
  bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

func bytes(hex text: String) -> [UInt8] {
  var out: [UInt8] = []
  var chars = Array(text.utf8)[...]
  while chars.count >= 2 {
    out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16) ?? 0)
    chars = chars.dropFirst(2)
  }
  return out
}

@Suite struct SHA256Tests {
  /// FIPS 180-4 examples (NIST CSRC "Example Algorithms", SHA-256).
  @Test(arguments: [
    ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    ),
    (
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
    ),
  ])
  func matchesTheNISTExamples(message: String, digest: String) {
    #expect(hex(SHA256.hash(Array(message.utf8))) == digest)
  }

  @Test func hashesOneMillionAsAsOneBlockStream() {
    var hasher = SHA256()
    let chunk = [UInt8](repeating: 0x61, count: 1000)
    for _ in 0..<1000 { hasher.update(chunk) }
    #expect(hex(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }

  /// Lengths around the padding boundaries (55/56 bytes leave or take a second block); expected
  /// digests from Python's hashlib over bytes 0, 1, 2, … (mod 256).
  @Test(arguments: [
    (55, "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59"),
    (56, "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562"),
    (57, "2fe741af801cc238602ac0ec6a7b0c3a8a87c7fc7d7f02a3fe03d1c12eac4d8f"),
    (63, "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488"),
    (64, "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108"),
    (65, "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781"),
    (119, "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6"),
    (120, "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c"),
    (127, "92ca0fa6651ee2f97b884b7246a562fa71250fedefe5ebf270d31c546bfea976"),
    (128, "471fb943aa23c511f6f72f8d1652d9c880cfa392ad80503120547703e56a2be5"),
    (1000, "a8af099bf2e878609558dbf69d8f88f4a31040a8cf84b549a0cfa912f12ffc3f"),
  ])
  func padsAtBlockBoundaries(length: Int, digest: String) {
    let message = (0..<length).map { UInt8(truncatingIfNeeded: $0) }
    #expect(hex(SHA256.hash(message)) == digest)
    // Fed in uneven pieces, the digest is the same.
    var hasher = SHA256()
    var rest = message[...]
    var piece = 1
    while !rest.isEmpty {
      hasher.update(rest.prefix(piece))
      rest = rest.dropFirst(piece)
      piece = piece * 3 % 17 + 1
    }
    #expect(hex(hasher.finalize()) == digest)
  }
}

@Suite struct HMACTests {
  /// RFC 4231 §4.2–4.8, HMAC-SHA-256. Case 5 is truncated to 128 bits by the RFC.
  @Test(arguments: [
    (
      String(repeating: "0b", count: 20), hex(Array("Hi There".utf8)),
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    ),
    (
      hex(Array("Jefe".utf8)), hex(Array("what do ya want for nothing?".utf8)),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    ),
    (
      String(repeating: "aa", count: 20), String(repeating: "dd", count: 50),
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
    ),
    (
      "0102030405060708090a0b0c0d0e0f10111213141516171819", String(repeating: "cd", count: 50),
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"
    ),
    (
      String(repeating: "0c", count: 20), hex(Array("Test With Truncation".utf8)),
      "a3b6167473100ee06e0c796c2955552b"
    ),
    (
      String(repeating: "aa", count: 131),
      hex(Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    ),
    (
      String(repeating: "aa", count: 131),
      hex(
        Array(
          "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."
            .utf8)),
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
    ),
  ])
  func matchesRFC4231(key: String, data: String, mac: String) {
    let full = hex(HMACSHA256(key: bytes(hex: key)).authenticate(bytes(hex: data)))
    #expect(full.hasPrefix(mac))
  }

  @Test func theSameKeyObjectGivesIndependentMACs() {
    let hmac = HMACSHA256(key: Array("key".utf8))
    let first = hmac.authenticate(Array("one".utf8))
    _ = hmac.authenticate(Array("two".utf8))
    #expect(hmac.authenticate(Array("one".utf8)) == first, "no state leaks from one message to the next")
  }
}
