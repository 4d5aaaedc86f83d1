import Foundation
import Testing

/// `lbscope pcap` end to end: reports and exit codes.
@Suite struct PcapCLITests {
  @Test func labCaptureGivesAReportAndExitsZero() throws {
    let run = try lbscope(["pcap", "captures/affinity-nat/node.pcap", "--format", "json"])
    #expect(run.status == 0)
    #expect(run.stdout.contains("\"kind\": \"pcap\"") || run.stdout.contains("\"kind\":\"pcap\""))
    #expect(run.stdout.contains("10.244.1.4:8080"))
    #expect(run.stderr.isEmpty, "no progress line when stderr is not a terminal")
  }

  @Test func damagedCaptureExitsSixtyFive() throws {
    let run = try lbscope(["pcap", "../shared/corpus/pcap/zeek_trunc_ip4.pcap"])
    #expect(run.status == 65)
    #expect(run.stdout.hasPrefix("# lbscope report"))
    #expect(run.stderr.contains("truncated"))
  }

  @Test func cutFileExitsSixtyFive() throws {
    let run = try lbscope(["pcap", "../shared/corpus/pcap/libpcap_pcapng-invalid-vers-1.pcapng"])
    #expect(run.status == 65)
  }

  @Test func notACaptureExitsSixtySix() throws {
    let run = try lbscope(["pcap", "README.md"])
    #expect(run.status == 66)
    #expect(run.stderr.contains("not a pcap or pcapng"))
  }

  @Test func badFilterIsAUsageError() throws {
    let run = try lbscope(["pcap", "captures/uniform/node.pcap", "--filter", "tcp port ((("])
    #expect(run.status == 64)
    #expect(run.stderr.contains("does not compile"))
  }

  @Test func serviceFocusLeavesOtherFrontendsOut() throws {
    let run = try lbscope(["pcap", "captures/uniform/node.pcap", "--service", "10.96.0.99:80"])
    #expect(run.status == 0)
    #expect(run.stdout.contains("left out by --service"))
  }
}
