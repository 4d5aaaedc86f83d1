import LBCore
import Testing

@Suite struct IPv4AddressTests {
  @Test func parsesAndPrintsDottedQuads() {
    for text in ["0.0.0.0", "10.244.1.5", "255.255.255.255", "192.168.50.21"] {
      #expect(IPv4Address(text)?.description == text)
    }
    #expect(IPv4Address("10.0.0.1")?.value == 0x0A00_0001)
  }

  @Test func rejectsMalformedDottedQuads() {
    for text in [
      "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "1.2.3.", ".1.2.3", "1.2.3.4a", "0001.2.3.4",
      " 1.2.3.4",
    ] {
      #expect(IPv4Address(text) == nil, "\(text) should not parse")
    }
  }
}

@Suite struct IPv6AddressTests {
  @Test func printsRFC5952Form() {
    let cases: [(String, String)] = [
      ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
      ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // first of two equal runs
      ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  // a single zero group is not compressed
      ("0:0:0:0:0:0:0:0", "::"),
      ("::1", "::1"),
      ("fe80::", "fe80::"),
      ("2001:DB8::ABCD", "2001:db8::abcd"),
      ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
      ("2001:db8:0:0:0:1:0:0", "2001:db8::1:0:0"),
      ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),  // the longest run wins
      ("fd00::192:168:5:32", "fd00::192:168:5:32"),
    ]
    for (input, expected) in cases {
      #expect(IPv6Address(input)?.description == expected, "\(input)")
    }
  }

  @Test func rejectsMalformedText() {
    for text in [
      "", ":", ":::", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", "1:2:3:4:5:6:7:8::",
      "::1.2.3", "fe80::1%eth0", "1:",
    ] {
      #expect(IPv6Address(text) == nil, "\(text) should not parse")
    }
  }

  @Test func parsesEmbeddedIPv4() {
    #expect(IPv6Address("64:ff9b::10.0.0.1")?.low == 0x0A00_0001)
    #expect(IPv6Address("::ffff:10.0.0.1")?.mappedIPv4 == IPv4Address("10.0.0.1"))
  }

  @Test func ordersNumerically() {
    let a = IPAddress("10.0.0.2")
    let b = IPAddress("10.0.0.10")
    let c = IPAddress("::1")
    #expect(a! < b!)
    #expect(b! < c!)  // IPv4 sorts before IPv6
  }
}

@Suite struct EndpointTests {
  @Test func printsIPv6EndpointsInBrackets() {
    #expect(Endpoint("[2001:db8::1]:443")?.description == "[2001:db8::1]:443")
    #expect(Endpoint("10.96.0.10:80")?.description == "10.96.0.10:80")
  }

  @Test func rejectsEndpointsWithoutPorts() {
    #expect(Endpoint("10.96.0.10") == nil)
    #expect(Endpoint("10.96.0.10:70000") == nil)
    #expect(Endpoint("[2001:db8::1]") == nil)
  }
}

@Suite struct ObservationTests {
  let client = Endpoint("203.0.113.5:40000")!
  let vip = Endpoint("10.96.0.10:80")!
  let pod = Endpoint("10.244.1.2:8080")!
  let node = Endpoint("192.168.10.11:61000")!

  @Test func replySourceDifferentFromOriginalDestinationMeansDNAT() {
    let original = FiveTuple(proto: .tcp, source: client, destination: vip)
    let reply = FiveTuple(proto: .tcp, source: pod, destination: client)
    let o = ConnectionObservation(
      conntrackOriginal: original, reply: reply, state: .established, replied: true,
      assured: true, location: SourceLocation(input: 0, line: 1))
    #expect(o.isDestinationTranslated)
    #expect(!o.isSourceTranslated)
    #expect(o.frontend == vip)
    #expect(o.backend == pod)
    #expect(!o.failed)
  }

  @Test func replyDestinationDifferentFromOriginalSourceMeansSNAT() {
    let original = FiveTuple(proto: .tcp, source: client, destination: vip)
    let reply = FiveTuple(proto: .tcp, source: pod, destination: node)
    let o = ConnectionObservation(
      conntrackOriginal: original, reply: reply, state: .timeWait, replied: true, assured: true,
      location: SourceLocation(input: 0, line: 1))
    #expect(o.isSourceTranslated)
    #expect(o.translated.source == node)
  }

  @Test func unansweredHandshakeIsAFailure() {
    let original = FiveTuple(proto: .tcp, source: client, destination: vip)
    let reply = FiveTuple(proto: .tcp, source: pod, destination: client)
    let o = ConnectionObservation(
      conntrackOriginal: original, reply: reply, state: .synSent, replied: false, assured: false,
      location: SourceLocation(input: 0, line: 1))
    #expect(o.failed)
    var refused = o
    refused.replied = true
    refused.state = .close
    #expect(refused.failed, "an RST answering the SYN closes the entry before ESTABLISHED")
  }
}
