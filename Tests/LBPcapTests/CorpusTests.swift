import Foundation
import LBCore
import LBPcap
import Testing

/// Every third-party capture in `../shared/corpus/pcap`, checked against tshark when installed.
@Suite struct CorpusTests {
  @Test func corpusIsPresent() {
    #expect(corpusFiles().count >= 50, "expected the shared pcap corpus at \(corpusPcap.path)")
  }

  @Test(arguments: corpusFiles())
  func readsWithoutCrashOrHang(_ file: URL) throws {
    do {
      let reading = try readCapture(file.path)
      #expect(reading.summary.records == reading.packets)
      if reading.summary.partial { #expect(reading.summary.issueCount > 0) }
    } catch {
      // Only "not a capture at all" may throw for a file that exists.
      #expect(error.code == .notCapture, "\(file.lastPathComponent): \(error)")
    }
  }

  /// Packet counts per file agree with tshark; files tshark refuses are damaged for us too.
  @Test(arguments: corpusFiles())
  func packetCountsAgreeWithTshark(_ file: URL) throws {
    guard let tshark = tsharkPath else {
      print("SKIPPED packetCountsAgreeWithTshark: tshark is not installed")
      return
    }
    // pcapng custom and journal blocks are frames to tshark but carry no packet (no encapsulation).
    let run = try runTool(tshark, ["-n", "-r", file.path, "-T", "fields", "-e", "frame.encap_type"])
    let counted = run.stdout.split(separator: "\n").filter { !$0.isEmpty }.count
    let reading = try? readCapture(file.path)
    let refused =
      run.stderr.contains("appears to be damaged or corrupt") || run.stderr.contains("doesn't support")
      || run.stderr.contains("isn't a capture file") || run.stderr.contains("cut short")
      || run.stderr.contains("unknown")
    if refused {
      // tshark stops at damage, as we do: the packets before it count, and the file is flagged.
      #expect(reading.map { $0.summary.partial || $0.summary.issueCount > 0 } ?? true, "\(run.stderr)")
      #expect(reading.map { $0.packets == counted } ?? true)
    } else {
      #expect(reading?.packets == counted, "\(file.lastPathComponent): tshark counted \(counted)")
    }
  }

  /// Innermost TCP/UDP 5-tuples agree with tshark's dissection (without reassembly), packet by
  /// packet, for files tshark reads cleanly.
  @Test(arguments: corpusFiles())
  func fiveTuplesAgreeWithTshark(_ file: URL) throws {
    guard let tshark = tsharkPath else {
      print("SKIPPED fiveTuplesAgreeWithTshark: tshark is not installed")
      return
    }
    // tshark leaves out a packet whose DNS payload it finds malformed (after a deprecated
    // type 0 routing header); lbscope does not parse DNS, so it keeps the UDP tuple.
    if file.lastPathComponent == "zeek_ipv6-hbh-routing0.pcap" { return }
    // Files with counted issues differ from tshark by design (it dissects what lbscope counts
    // as malformed, truncated or unsupported); the corpus tests above check those are counted.
    guard let reading = try? readCapture(file.path), reading.summary.issueCount == 0 else { return }
    let run = try runTool(
      tshark,
      [
        "-n", "-r", file.path, "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
        "-d", "udp.port==8472,vxlan", "-Y", "(tcp or udp) and not icmp and not icmpv6 and not _ws.malformed",
        "-T", "fields", "-E", "occurrence=l", "-e", "ip.proto", "-e", "ipv6.nxt", "-e", "ip.src", "-e",
        "ipv6.src", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e",
        "udp.srcport", "-e", "udp.dstport", "-e", "ip.version",
      ])
    var expected: [String] = []
    for line in run.stdout.split(separator: "\n", omittingEmptySubsequences: true) {
      let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
      guard f.count >= 11 else { continue }
      let tcp = !f[6].isEmpty
      let v6 = f[10] == "6" || (f[2].isEmpty && !f[3].isEmpty)
      let src = v6 ? f[3] : f[2]
      let dst = v6 ? f[5] : f[4]
      let sport = tcp ? f[6] : f[8]
      let dport = tcp ? f[7] : f[9]
      expected.append("\(tcp ? 6 : 17) \(src) \(sport) \(dst) \(dport)")
    }
    #expect(
      Set(reading.tuples) == Set(expected),
      "\(file.lastPathComponent): only lbscope \(Set(reading.tuples).subtracting(expected).sorted().prefix(3)), only tshark \(Set(expected).subtracting(reading.tuples).sorted().prefix(3))"
    )
  }

  /// Timestamps (µs and ns pcap, pcapng with its resolution) agree with tshark's to the ns.
  @Test(arguments: [
    "tcpdump_tcp-handshake-nano_sll.pcap", "zeek_linux_dlt_sll2.pcap", "pcapngtg_le_basic_test001.pcapng",
    "tcpdump_unaligned-nfs-1_be.pcap", "zeek_pcapng-multi-interface.pcapng",
  ])
  func timestampsAgreeWithTshark(_ name: String) throws {
    guard let tshark = tsharkPath else {
      print("SKIPPED timestampsAgreeWithTshark: tshark is not installed")
      return
    }
    let path = corpusPcap.appendingPathComponent(name).path
    let reading = try readCapture(path)
    let run = try runTool(tshark, ["-n", "-r", path, "-T", "fields", "-e", "frame.time_epoch"])
    let theirs = run.stdout.split(separator: "\n").map { line -> Int64 in
      let parts = line.split(separator: ".")
      let seconds = Int64(parts.first ?? "0") ?? 0
      let fraction =
        parts.count > 1 ? String(parts[1]).padding(toLength: 9, withPad: "0", startingAt: 0) : "0"
      return seconds * 1_000_000_000 + (Int64(fraction) ?? 0)
    }
    #expect(reading.timestamps == theirs)
  }

  @Test func bigEndianAndNanosecondPcapsAreRecognised() throws {
    let be = try readCapture(corpusPcap.appendingPathComponent("tcpdump_unaligned-nfs-1_be.pcap").path)
    #expect(be.summary.notes.contains { $0.contains("big-endian") })
    let nano = try readCapture(corpusPcap.appendingPathComponent("tcpdump_tcp-handshake-nano_sll.pcap").path)
    #expect(nano.summary.notes.contains { $0.contains("nanosecond") })
    #expect(nano.timestamps.contains { $0 % 1000 != 0 })
  }

  @Test func mixedEndianSectionsAndTwoLinkTypesAreRead() throws {
    let mixed = try readCapture(
      corpusPcap.appendingPathComponent("pcapngtg_le_difficult_test202_mixed_endian_shb.pcapng").path)
    #expect(mixed.packets == 8 && mixed.summary.issueCount == 0)
    #expect(mixed.summary.notes.contains("several pcapng sections"))
  }

  @Test func damagedHeadersAreCountedWithTheirByteOffset() throws {
    let bad = try readCapture(corpusPcap.appendingPathComponent("libpcap_pcap-invalid-version-1.pcap").path)
    #expect(bad.summary.partial && bad.summary.malformed == 1)
    #expect(bad.summary.examples.first?.message.contains("at byte 0") == true)
  }

  @Test func notACaptureThrows() throws {
    let readme = repositoryRoot.appendingPathComponent("README.md").path
    #expect(throws: PcapError.self) { try CaptureFileReader(path: readme) }
    #expect(throws: PcapError.self) { try CaptureFileReader(path: "/nonexistent/file.pcap") }
  }
}

/// Every prefix of a valid capture ends cleanly: no crash, no hang, fewer packets, and a cut
/// record is flagged.
@Suite struct DripFeedTests {
  @Test(arguments: ["tcpdump_tcp-handshake-nano_sll.pcap", "pcapngtg_le_advanced_test102_all_blocks.pcapng"])
  func everyPrefixEndsCleanly(_ name: String) throws {
    let data = try Data(contentsOf: corpusPcap.appendingPathComponent(name))
    let whole = try readCapture(corpusPcap.appendingPathComponent(name).path)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "lbscope-drip-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: path) }
    var flagged = 0
    for n in 0..<data.count {
      try data.prefix(n).write(to: path)
      do {
        let reading = try readCapture(path.path)
        #expect(reading.packets <= whole.packets)
        if reading.summary.partial { flagged += 1 }
      } catch {
        #expect(n < 4, "prefix of \(n) bytes threw \(error)")
      }
    }
    #expect(flagged > data.count / 2)
  }
}
