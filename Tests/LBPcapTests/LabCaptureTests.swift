import Foundation
import LBAnalysis
import LBCore
import LBPcap
import Testing

/// The lab's `tcpdump -i any` captures (LINUX_SLL2, each packet up to four times because of
/// bridges) against what the clients saw (`truth.json`).
@Suite struct LabCaptureTests {
  struct Truth: Decodable {
    struct Connection: Decodable {
      var backend: String
      var localPort: Int
      var seenAs: String
      var ok: Bool
    }
    var connections: [Connection]
    var backends: [String: Int]
  }

  func truth(_ scenario: String) throws -> Truth {
    let data = try Data(contentsOf: capturesRoot.appendingPathComponent("\(scenario)/truth.json"))
    return try JSONDecoder().decode(Truth.self, from: data)
  }

  @Test(arguments: ["uniform", "affinity-nat"])
  func clientToBackendMappingAgreesWithTruth(_ scenario: String) throws {
    let (observed, trace) = try observations([
      capturesRoot.appendingPathComponent("\(scenario)/node.pcap").path
    ])
    let truth = try truth(scenario)
    var truthBackend: [String: String] = [:]
    for c in truth.connections { truthBackend["\(c.seenAs):\(c.localPort)"] = c.backend }

    let serviceConnections = observed.filter(\.isDestinationTranslated)
    #expect(!serviceConnections.isEmpty)
    var agree = 0
    var perBackend: [String: Int] = [:]
    var truthPerBackendInCapture: [String: Int] = [:]
    for o in serviceConnections {
      let key = "\(o.client)"
      perBackend["\(o.backend)", default: 0] += 1
      if let expected = truthBackend[key] {
        truthPerBackendInCapture[expected, default: 0] += 1
        if expected == "\(o.backend)" { agree += 1 }
      }
    }
    // At least 99% of the captured connections go where the client saw them go.
    #expect(
      Double(agree) >= 0.99 * Double(serviceConnections.count), "\(agree) of \(serviceConnections.count)")
    // Per-backend counts equal the truth for the connections the capture holds.
    #expect(perBackend == truthPerBackendInCapture)
    // Both legs were joined for every service connection; nothing was a copy counted twice.
    #expect(trace.totals.joinedConnections == serviceConnections.count)
    #expect(trace.totals.copies > 0)
    #expect(serviceConnections.allSatisfy { !$0.failed && $0.handshakeRTTNanos != nil })
  }

  /// The affinity-nat capture holds every connection the clients made.
  @Test func affinityNATCaptureHoldsEveryConnection() throws {
    let (observed, _) = try observations([capturesRoot.appendingPathComponent("affinity-nat/node.pcap").path])
    var perBackend: [String: Int] = [:]
    for o in observed where o.isDestinationTranslated { perBackend["\(o.backend)", default: 0] += 1 }
    let expected = try truth("affinity-nat").backends.filter { $0.value > 0 }
    #expect(perBackend == expected)
  }

  /// The uniform capture started after the clients did: tshark sees 145 distinct client SYNs
  /// of the 150 connections in truth.json, and so must we.
  @Test func uniformCaptureCountsWhatTsharkSees() throws {
    let path = capturesRoot.appendingPathComponent("uniform/node.pcap").path
    let (observed, _) = try observations([path])
    let count = observed.filter(\.isDestinationTranslated).count
    guard let tshark = tsharkPath else {
      print("SKIPPED tshark comparison: tshark is not installed")
      #expect(count == 145)
      return
    }
    let run = try runTool(
      tshark,
      [
        "-n", "-r", path, "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0 && ip.dst==10.96.0.10", "-T", "fields",
        "-e", "ip.src", "-e", "tcp.srcport",
      ])
    let distinct = Set(run.stdout.split(separator: "\n"))
    #expect(count == distinct.count)
  }

  /// Packet and byte counts per connection count each packet once, not once per interface.
  @Test func copiesOnSeveralInterfacesCountOnce() throws {
    let path = capturesRoot.appendingPathComponent("uniform/node.pcap").path
    let (observed, _) = try observations([path])
    guard let first = observed.first(where: \.isDestinationTranslated), let tshark = tsharkPath else {
      return
    }
    let b = first.backend
    let c = first.translated.source
    let run = try runTool(
      tshark,
      [
        "-n", "-r", path, "-Y",
        "tcp && ip.addr==\(b.address) && tcp.port==\(b.port) && ip.addr==\(c.address) && tcp.port==\(c.port)",
        "-T", "fields", "-e", "ip.id", "-e", "tcp.seq_raw", "-e", "tcp.flags", "-e", "ip.src",
      ])
    let distinct = Set(run.stdout.split(separator: "\n")).count
    let ours = (first.originalCounters.packets ?? 0) + (first.replyCounters.packets ?? 0)
    #expect(Int(ours) == distinct)
  }

  @Test func filterKeepsOnlyMatchingLegs() throws {
    let path = capturesRoot.appendingPathComponent("uniform/node.pcap").path
    let (postDNAT, _) = try observations([path], filter: "tcp port 8080")
    #expect(!postDNAT.isEmpty)
    #expect(postDNAT.allSatisfy { !$0.isDestinationTranslated && $0.original.destination.port == 8080 })
    #expect(throws: PcapError.self) { try observations([path], filter: "tcp port nonsense(") }
  }

  /// Several files merged by time give the same connections as one.
  @Test func twoFilesMergeByTime() throws {
    let path = capturesRoot.appendingPathComponent("affinity-nat/node.pcap").path
    let (single, _) = try observations([path])
    let (double, trace) = try observations([path, path])
    // The second file repeats every packet at the same time: they are copies, counted once.
    #expect(double.filter(\.isDestinationTranslated).count == single.filter(\.isDestinationTranslated).count)
    #expect(trace.summaries.count == 2)
  }
}

/// Failures, RTT and HTTP counts on small third-party captures.
@Suite struct FlowMeasureTests {
  @Test func synThenRSTIsAFailedConnection() throws {
    let (observed, _) = try observations([
      corpusPcap.appendingPathComponent("zeek_tcp_syn-then-rst.pcap").path
    ])
    #expect(observed.count == 1)
    #expect(observed.first?.failed == true)
  }

  @Test func pipelinedHTTPRequestsAreCounted() throws {
    let path = corpusPcap.appendingPathComponent("zeek_http_pipelined-requests.pcap").path
    let (observed, _) = try observations([path])
    let ours = observed.compactMap(\.httpRequests).reduce(0, +)
    guard let tshark = tsharkPath else {
      #expect(ours > 1)
      return
    }
    let run = try runTool(
      tshark, ["-n", "-r", path, "-Y", "http.request", "-T", "fields", "-e", "http.request.method"])
    let theirs = run.stdout.split(separator: "\n").count
    #expect(ours == theirs)
  }

  @Test func icmpUnreachableFailsTheQuotedFlow() throws {
    // The capture holds only the ICMP error, so no flow exists to fail; the error is counted.
    let (_, trace) = try observations([
      corpusPcap.appendingPathComponent("zeek_icmp-destunreach-udp.pcap").path
    ])
    #expect(trace.totals.icmpErrors == 1)
  }

  @Test func handshakeRTTIsSynToSynAck() throws {
    let path = corpusPcap.appendingPathComponent("tcpdump_tcp-handshake-nano_sll.pcap").path
    let reading = try readCapture(path)
    let (observed, _) = try observations([path])
    #expect(observed.first?.handshakeRTTNanos == reading.timestamps[1] - reading.timestamps[0])
  }
}
