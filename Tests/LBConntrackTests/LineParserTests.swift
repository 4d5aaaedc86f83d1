import LBConntrack
import LBCore
import Testing

let plainLine =
  "tcp      6 86205 ESTABLISHED src=10.244.2.6 dst=10.0.223.224 sport=33041 dport=27017 src=10.244.1.7 dst=10.244.2.6 sport=27017 dport=33041 [ASSURED] mark=0 use=1"

@Suite struct ConntrackLineParserTests {
  @Test func readsThePlainListFormat() throws {
    let e = try #require(entry(parseLine(plainLine)))
    #expect(e.proto == .tcp)
    #expect(e.timeout == 86205)
    #expect(e.state == .established)
    #expect(e.original.source == IPAddress("10.244.2.6"))
    #expect(e.original.destinationPort == 27017)
    #expect(e.reply.source == IPAddress("10.244.1.7"))
    #expect(e.assured)
    #expect(!e.unreplied)
    #expect(e.mark == 0)
    #expect(e.use == 1)
    let o = try #require(e.observation(input: 0))
    #expect(o.frontend.description == "10.0.223.224:27017")
    #expect(o.backend.description == "10.244.1.7:27017")
  }

  @Test func readsTheExtendedAndProcFormats() throws {
    let extended =
      "ipv4     2 tcp      6 117 TIME_WAIT src=192.168.50.11 dst=10.96.0.10 sport=41000 dport=80 src=10.244.1.3 dst=192.168.50.11 sport=8080 dport=41000 [ASSURED] mark=0 zone=3 use=1"
    let e = try #require(entry(parseLine(extended)))
    #expect(e.timeout == 117)
    #expect(e.state == .timeWait)
    #expect(e.zone == 3)
    // `cat -n` in front of /proc/net/nf_conntrack
    let numbered =
      "   853  ipv4     2 tcp      6 299 ESTABLISHED src=192.168.1.138 dst=192.168.1.139 sport=33290 dport=22 src=192.168.1.139 dst=154.186.196.59 sport=22 dport=33290 [ASSURED] mark=0 secctx=system_u:object_r:unlabeled_t:s0 zone=0 use=2"
    guard case .entry(let n) = parseLine(numbered) else {
      Issue.record("a cat -n prefix is not damage")
      return
    }
    #expect(n.timeout == 299)
    #expect(n.use == 2)
    let ipv6 =
      "ipv6     10 tcp      6 86392 ESTABLISHED src=2001:0db8:ffff:0021:0000:0000:0000:0002 dst=2001:0db8:ffff:0022:0000:0000:0000:0001 sport=59488 dport=10001 src=2001:0db8:ffff:0022:0000:0000:0000:0001 dst=2001:0db8:ffff:0021:0000:0000:0000:0002 sport=10001 dport=59488 [ASSURED] mark=0 zone=0 use=3"
    let v6 = try #require(entry(parseLine(ipv6)))
    #expect(v6.original.source?.description == "2001:db8:ffff:21::2")
  }

  @Test func readsEventLinesWithAndWithoutTimeouts() throws {
    let new = try #require(
      entry(
        parseLine(
          "    [NEW] tcp      6 120 SYN_SENT src=10.8.6.97 dst=10.11.249.108 sport=46128 dport=80 [UNREPLIED] src=10.8.6.96 dst=10.8.6.97 sport=80 dport=46128"
        )))
    #expect(new.event == .new)
    #expect(new.unreplied)
    #expect(new.timeout == 120)
    let destroy = try #require(
      entry(
        parseLine(
          " [DESTROY] tcp      6 TIME_WAIT src=fd00::192:168:5:32 dst=2a05:d014:687:ed01::21 sport=58790 dport=443 packets=15 bytes=1750 src=2a05:d014:687:ed01::21 dst=2003:a:c7f:e5e8:a3ae:63f7:7f92:e286 sport=443 dport=60848 packets=13 bytes=6905 [ASSURED] mark=16777216 delta-time=120"
        )))
    #expect(destroy.event == .destroy)
    #expect(destroy.timeout == nil)
    #expect(destroy.original.packets == 15)
    #expect(destroy.reply.bytes == 6905)
    #expect(destroy.mark == 16_777_216)
    let stamped = try #require(
      entry(
        parseLine(
          "[1700000000.123456]\t    [NEW] udp      17 30 src=10.0.0.1 dst=10.96.0.10 sport=5000 dport=53 [UNREPLIED] src=10.244.0.5 dst=10.0.0.1 sport=53 dport=5000"
        )))
    #expect(stamped.eventTime == 1_700_000_000.123456)
  }

  @Test func readsICMPSCTPAndGRE() throws {
    let icmp = try #require(
      entry(
        parseLine(
          "icmp     1 29 src=10.0.0.1 dst=10.96.0.1 type=8 code=0 id=4242 src=10.244.0.2 dst=10.0.0.1 type=0 code=0 id=4242 mark=0 use=1 id=123456"
        )))
    #expect(icmp.original.icmpID == 4242)
    #expect(icmp.reply.icmpType == 0)
    #expect(icmp.id == 123_456)
    let sctp = try #require(
      entry(
        parseLine(
          "[NEW] sctp     132 3 src=172.31.249.96 dst=172.31.249.39 sport=47541 dport=30102 [UNREPLIED] src=172.30.151.15 dst=172.31.249.96 sport=30102 dport=47541 zone=64001"
        )))
    #expect(sctp.proto == .sctp)
    #expect(sctp.zone == 64001)
    let gre = try #require(
      entry(
        parseLine(
          "gre      47 178 src=10.0.0.1 dst=10.0.0.2 srckey=0x0 dstkey=0x0 src=10.0.0.2 dst=10.0.0.1 srckey=0x0 dstkey=0x0 [ASSURED] mark=0 use=1"
        )))
    #expect(gre.proto == .gre)
    #expect(gre.observation(input: 0) != nil)
  }

  @Test func skipsVendorTokensAfterUse() throws {
    let e = try #require(entry(parseLine(plainLine + " labels=0x1 helper=ftp vendorword [SEEN_REPLY]")))
    #expect(e.use == 1)
  }

  @Test func recognisesTheSummaryLine() {
    guard
      case .summary(let n) = parseLine(
        "conntrack v1.4.7 (conntrack-tools): 364 flow entries have been shown.")
    else {
      Issue.record("summary line not recognised")
      return
    }
    #expect(n == 364)
  }

  @Test func recoversALineWhoseStartWasCut() throws {
    guard
      case .recovered(let e, let issue) = parseLine(
        "cp      6 86205 ESTABLISHED src=10.244.2.6 dst=10.0.223.224 sport=33041 dport=27017 src=10.244.1.7 dst=10.244.2.6 sport=27017 dport=33041 [ASSURED] mark=0 use=1"
      )
    else {
      Issue.record("expected a recovered entry")
      return
    }
    #expect(e.proto == .tcp)
    #expect(e.timeout == 86205)
    #expect(issue.kind == .truncated)
    guard
      case .recovered(let cut, _) = parseLine(
        "6 46 TIME_WAIT src=10.64.4.48 dst=10.0.0.10 sport=59817 dport=53 src=10.64.2.4 dst=10.64.4.48 sport=53 dport=59817 [ASSURED] mark=0 use=1"
      )
    else {
      Issue.record("expected a recovered entry")
      return
    }
    #expect(cut.proto == .tcp)
    #expect(cut.timeout == 46)
  }

  @Test func rejectsBadAddressesAndPorts() {
    guard
      case .issue(let a) = parseLine(
        "tcp 6 10 ESTABLISHED src=10.0.0.300 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1"
      )
    else {
      Issue.record("a bad address must be an issue")
      return
    }
    #expect(a.kind == .malformed)
    guard
      case .issue(let p) = parseLine(
        "tcp 6 10 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=1 dport=70000 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1"
      )
    else {
      Issue.record("a bad port must be an issue")
      return
    }
    #expect(p.kind == .malformed)
  }

  @Test func reportsTextThatIsNotConntrackAsUnsupported() {
    for text in ["cpu=0 found=0 invalid=3 ignore=0 insert=0", "hello world"] {
      guard case .issue(let issue) = parseLine(text) else {
        Issue.record("\(text) is not an entry")
        continue
      }
      #expect(issue.kind == .unsupported, "\(text)")
    }
  }

  /// Every prefix of a valid line must decode without crashing; prefixes that end before the
  /// reply tuple is whole must be issues, never entries.
  @Test func dripFedPrefixesFailCleanly() {
    let bytes = Array(plainLine.utf8)
    let replyComplete =
      plainLine.range(of: "dport=33041 [ASSURED]")!.lowerBound.utf16Offset(in: plainLine) + "dport=3".count
    for length in 0...bytes.count {
      let prefix = Array(bytes[0..<length])
      let outcome = prefix.withUnsafeBytes { ConntrackLineParser.parse($0, number: 1) }
      if length < replyComplete {
        switch outcome {
        case .entry, .recovered: Issue.record("prefix of \(length) bytes decoded as an entry")
        default: break
        }
      } else if length >= bytes.count - 1 {
        #expect(entry(outcome) != nil)
      }
    }
  }
}

@Suite struct UnknownProtocolTests {
  @Test func unknownProtocolTakesItsNumber() throws {
    let e = try #require(
      entry(
        parseLine("unknown  2 594 src=172.20.1.3 dst=224.0.0.22 src=224.0.0.22 dst=172.20.1.3 mark=0 use=1")))
    #expect(e.proto.rawValue == 2)
  }
}

@Suite struct ICMPTranslationTests {
  @Test func anEchoExchangeIsNotMistakenForDNAT() throws {
    let e = try #require(
      entry(
        parseLine(
          "icmp     1 28 src=192.168.10.11 dst=192.168.10.12 type=8 code=0 id=12158 src=192.168.10.12 dst=192.168.10.11 type=0 code=0 id=12158 mark=0 use=1"
        )))
    let o = try #require(e.observation(input: 0))
    #expect(!o.isDestinationTranslated)
    #expect(!o.isSourceTranslated)
  }
}
