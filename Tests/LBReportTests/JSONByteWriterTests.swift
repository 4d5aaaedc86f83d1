import LBCore
import Testing

@testable import LBReport

/// The byte writer against the generic `JSON` writer, value by value.
@Suite struct JSONByteWriterTests {
  /// What the byte writer makes of `write`, as text.
  private func written(_ write: (inout JSONByteWriter) -> Void) -> String {
    var writer = JSONByteWriter(capacity: 1)
    write(&writer)
    var text: [UInt8] = Array("before:".utf8)
    writer.drain(into: &text)
    #expect(writer.count == 0)
    return String(decoding: text.dropFirst(7), as: UTF8.self)
  }

  @Test func writesDoublesAsFormatDoubleDoes() {
    var values: [Double] = [
      0, -0.0, 1, -1, 1e-7, -1e-7, 4.9e-7, 5e-7, 5.000001e-7, 0.5, -2.5, 0.1, 0.2 + 0.1, 1.0 / 3, 2.0 / 3,
      123.4567891, -123.4567891, 0.1234565, 999_999.9999995, 1_000_000, 123_456_789, 8.999e12, 9e12,
      9e12 - 1e-3,
      1e13, 1e20, -1e20, .nan, -.nan, .infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude,
    ]
    // A deterministic sweep over magnitudes 1e-8 … 1e14 with both signs.
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    for _ in 0..<20_000 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      let mantissa = Double(state >> 11) / Double(1 << 53)
      let exponent = Int(state % 23) - 8
      let sign: Double = state & (1 << 10) == 0 ? 1 : -1
      values.append(sign * mantissa * pow10(exponent))
    }
    for value in values {
      #expect(written { $0.write(value) } == JSON.formatDouble(value), "\(value)")
    }
  }

  private func pow10(_ n: Int) -> Double {
    var result = 1.0
    for _ in 0..<abs(n) { result *= 10 }
    return n < 0 ? 1 / result : result
  }

  @Test func writesIntegersAsTheGenericWriterDoes() {
    for value: Int64 in [0, 1, -1, 9, 10, 99, 100, 12_345, -12_345, 1 << 40, .max, .min, .max - 1, .min + 1] {
      #expect(written { $0.write(value) } == JSON.int(value).rendered().dropLast(), "\(value)")
    }
  }

  @Test func escapesStringsAsTheGenericWriterDoes() {
    for text in [
      "", "plain", "a\"b\\c\n\u{1}\r\t\u{1F}x", "\"", "ünïcødé 🚀", "\u{7F}",
      String(repeating: "ab\"", count: 3000),
    ] {
      #expect(
        written { $0.writeString(text) } == JSON.string(text).rendered().dropLast(), "\(text.prefix(20))")
    }
  }

  @Test func writesAddressesAndEndpointsAsTheirDescriptions() throws {
    let texts = [
      "0.0.0.0", "1.2.3.4", "9.10.99.100", "255.255.255.255", "10.244.1.10", "::", "fd00::1",
      "::ffff:10.0.0.1",
      "1234:5678:9abc:def0:1234:5678:9abc:def0", "2001:db8::8:800:200c:417a",
    ]
    for text in texts {
      let address = try #require(IPAddress(text))
      #expect(written { $0.write(address) } == address.description)
      for port: UInt16 in [0, 7, 80, 443, 8080, 65535] {
        let endpoint = Endpoint(address, port)
        let slot = UnsafeMutablePointer<UInt8>.allocate(capacity: JSONByteWriter.endpointTextLimit + 1)
        defer { slot.deallocate() }
        let n = JSONByteWriter.writeEndpoint(endpoint, to: slot)
        #expect(n <= JSONByteWriter.endpointTextLimit)
        #expect(
          String(decoding: UnsafeBufferPointer(start: slot, count: n), as: UTF8.self) == endpoint.description)
      }
    }
  }

  @Test func writesEveryOctetInEveryPosition() {
    for o in 0..<256 {
      let octets = [o, 255 - o, o * 7 % 256, o / 3].map(UInt32.init)
      let address = IPAddress.v4(IPv4Address(octets.reduce(0) { $0 << 8 | $1 }))
      #expect(written { $0.write(address) } == octets.map(String.init).joined(separator: "."))
    }
  }

  /// Many small writes grow the buffer past its first capacity without losing a byte.
  @Test func growsWithoutLosingBytes() {
    var expected = ""
    let text = written { writer in
      for i in 0..<5000 {
        writer.write("ab")
        writer.writeSpaces(i % 70)
        writer.write(Int64(i))
        expected += "ab" + String(repeating: " ", count: i % 70) + String(i)
      }
    }
    #expect(text == expected)
  }
}
