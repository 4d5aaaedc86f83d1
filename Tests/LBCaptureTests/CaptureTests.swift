import Foundation
import LBCapture
import LBCore
import LBLabSupport
import LBLive
import LBPcap
import Testing

#if canImport(Glibc)
  import Glibc
#endif

/// The pcapng files of a capture directory, in order, and whether any temporary file is left.
func captureFiles(_ directory: String) throws -> (files: [String], partial: [String]) {
  let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
  return (
    names.filter { $0.hasSuffix(".pcapng") && !$0.hasPrefix(".") }.map { directory + "/" + $0 },
    names.filter { $0.hasSuffix(".partial") }
  )
}

/// Every packet of a file as (timestamp, original length, bytes), through lbscope's reader.
func packets(_ path: String) throws -> (packets: [(Int64, Int, [UInt8])], summary: InputSummary) {
  let reader = try CaptureFileReader(path: path)
  var result: [(Int64, Int, [UInt8])] = []
  while let packet = try reader.next() {
    result.append((packet.timestamp, packet.originalLength, Array(packet.data.rawBuffer)))
  }
  return (result, reader.summary)
}

@Suite struct PcapngWriterTests {
  /// The lab's node capture, rewritten through the writer with a 100 kB cap, reads back packet
  /// for packet, in files none larger than the cap, with nothing left under a temporary name.
  @Test func rewritingALabCaptureRotatesBySizeAndLosesNothing() throws {
    let source = repository.appendingPathComponent("captures/uniform/node.pcap").path
    let reader = try CaptureFileReader(path: source)
    let directory = try temporaryDirectory("rewrite")
    let cap = 100_000
    let writer = try PcapngWriter(
      directory: directory, interfaces: [CaptureInterface(name: "any", linkType: 276, snaplen: 262_144)],
      rotation: RotationPolicy(maxBytes: cap))
    writer.statistics = { [CaptureCounters(received: 7, droppedByKernel: 0, droppedByInterface: 3)] }
    var original: [(Int64, Int, [UInt8])] = []
    while let packet = try reader.next() {
      #expect(packet.linkType == .linuxSLL2)
      original.append((packet.timestamp, packet.originalLength, Array(packet.data.rawBuffer)))
      try writer.write(
        interface: 0, timestampNs: UInt64(packet.timestamp), originalLength: packet.originalLength,
        data: packet.data.rawBuffer)
    }
    try writer.close()
    let (files, partial) = try captureFiles(directory)
    #expect(partial.isEmpty)
    #expect(files == writer.files)
    #expect(files.count >= 3, "\(original.count) packets should need several 100 kB files")
    var back: [(Int64, Int, [UInt8])] = []
    for file in files {
      let size = try #require(try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int)
      #expect(size <= cap, "\(file) is \(size) bytes")
      let (packets, summary) = try packets(file)
      #expect(summary.issueCount == 0 && !summary.partial)
      back += packets
      // isb_ifdrop from the statistics block of every file.
      let check = try CaptureFileReader(path: file)
      while try check.next() != nil {}
      #expect(check.droppedByInterfaces == 3)
    }
    #expect(back.count == original.count)
    #expect(zip(back, original).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 && $0.2 == $1.2 })
  }

  @Test func refusesARotationSizeWithoutRoomForOnePacket() {
    #expect(throws: CaptureError.self) {
      _ = try PcapngWriter(
        directory: "/tmp/lbscope-never-made",
        interfaces: [CaptureInterface(name: "any", linkType: 276, snaplen: 512)],
        rotation: RotationPolicy(maxBytes: 1000))
    }
  }
}

/// Starts `lbscope capture` inside the lab's node and waits until the handles are open.
func startCapture(_ lab: Lab, _ arguments: [String]) throws -> ChildProcess {
  let started = ChildProcess.start(
    ["/usr/sbin/ip", "netns", "exec", lab.node, binary, "capture"] + arguments)
  guard case .success(let child) = started else {
    throw LabFailure(message: "cannot start lbscope capture")
  }
  guard child.waitForError(containing: "capturing on", timeout: .seconds(30)) else {
    throw LabFailure(message: "lbscope capture did not start")
  }
  return child
}

/// Per-backend connection counts of the report's only service.
func backendConnections(_ report: [String: Any]) -> [String: Int] {
  let services = report["services"] as? [[String: Any]] ?? []
  var result: [String: Int] = [:]
  for service in services where (service["frontends"] as? [String])?.contains("10.96.0.10:80") == true {
    for backend in service["backends"] as? [[String: Any]] ?? [] {
      if let address = backend["address"] as? String { result[address] = backend["connections"] as? Int }
    }
  }
  return result
}

func readJSON(_ path: String) throws -> [String: Any] {
  let data = try Data(contentsOf: URL(fileURLWithPath: path))
  return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

@Suite(.serialized) struct LiveCaptureTests {
  @Test(.enabled(if: isRoot, Comment(rawValue: needsRoot)))
  func captureInTheNodeSeesBothNATLegsOfEveryConnectionWithoutDrops() throws {
    let lab = try Lab("cap")
    defer { lab.close() }
    let directory = try temporaryDirectory("cap")
    let report = directory + "/report.json"
    let capture = try startCapture(
      lab,
      [
        "--interface", "any", "--filter", "tcp", "--duration", "60", "--write", directory + "/pcap",
        "-f", "json", "-o", report,
      ])
    let made = try lab.drive(30)
    #expect(made == 30)
    usleep(300_000)
    capture.send(SIGINT)
    let outcome = capture.wait(timeout: .seconds(60))
    let stderr = String(decoding: outcome.errorOutput, as: UTF8.self)
    #expect(outcome.status == 0, "\(stderr)")
    let json = try readJSON(report)
    let counts = backendConnections(json)
    #expect(counts.count == 2, "\(counts)")
    #expect(counts.values.reduce(0, +) == made)
    #expect(counts.values.allSatisfy { $0 > 0 })
    let inputs = json["inputs"] as? [[String: Any]] ?? []
    #expect(inputs.count == 1)
    #expect(inputs.first?["kind"] as? String == "live-capture")
    #expect(inputs.first?["partial"] as? Bool == false)
    let notes = (inputs.first?["notes"] as? [String] ?? []).joined(separator: "\n")
    #expect(notes.contains("\(made) connections joined across NAT"), "\(notes)")
    #expect(notes.contains("0 seen on one leg only"))
    #expect(notes.contains("ended by SIGINT"))
    #expect(notes.contains("0 dropped by the kernel (buffer full), 0 dropped by the interface"))
    let codes = (json["findings"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
    #expect(!codes.contains("capture-incomplete"))
  }

  @Test(.enabled(if: isRoot, Comment(rawValue: needsRoot)), arguments: [SIGINT, SIGTERM])
  func signalMidCaptureLeavesCompleteRotatedFiles(signal: Int32) throws {
    let lab = try Lab("csig\(signal)")
    defer { lab.close() }
    let directory = try temporaryDirectory("csig") + "/pcap"
    // 80 kB files: 40 connections (about 36 packets each on both legs) need several.
    let capture = try startCapture(
      lab, ["--write", directory, "--rotate-size", "0.08", "--snaplen", "512", "-f", "json"])
    let made = try lab.drive(40)
    #expect(made == 40)
    usleep(300_000)
    capture.send(signal)
    let outcome = capture.wait(timeout: .seconds(60))
    let stderr = String(decoding: outcome.errorOutput, as: UTF8.self)
    #expect(outcome.status == 0, "\(stderr)")
    let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
    #expect(stderr.contains("ended by \(name)"))
    // "captured N packets in …": every one of them is in the files.
    let line = stderr.split(separator: "\n").first { $0.contains("lbscope: captured ") }
    let captured = line.flatMap { Int(String($0.split(separator: " ")[2])) }
    let (files, partial) = try captureFiles(directory)
    #expect(partial.isEmpty)
    #expect(files.count >= 2, "\(files)")
    var total = 0
    for file in files {
      let size = try #require(try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int)
      #expect(size <= 80_000)
      let (packets, summary) = try packets(file)
      #expect(summary.issueCount == 0 && !summary.partial, "\(file): \(summary.examples)")
      total += packets.count
      if let tshark = ChildProcess.locate("tshark") {
        let read = try run(tshark, ["-r", file])
        #expect(read.status == 0, "\(read.stderr)")
        #expect(read.stdout.split(separator: "\n").count == packets.count)
      }
    }
    #expect(captured != nil && total == captured)
    let report = String(decoding: outcome.output, as: UTF8.self)
    #expect(report.contains("\"connections\": \(made)"))
  }

  @Test(.enabled(if: isRoot, "needs root to drop privileges with setpriv"))
  func captureWithoutCapNetRawExits77WithOneLine() throws {
    let directory = try temporaryDirectory("noraw")
    let result = try run(
      "/usr/bin/setpriv",
      [
        "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", binary, "capture",
        "--duration",
        "1", "--write", directory + "/pcap",
      ])
    #expect(result.status == 77)
    #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
    #expect(result.stderr.contains("CAP_NET_RAW"))
    #expect(result.stderr.contains("tcpdump -i any -w node.pcap"))
    #expect(!FileManager.default.fileExists(atPath: directory + "/pcap"), "nothing is written")
  }
}

@Suite(.serialized) struct CollectCaptureTests {
  @Test(.enabled(if: isRoot, Comment(rawValue: needsRoot)))
  func collectWithCaptureSecondsBundlesACompleteCaptureOfTheLabsTraffic() throws {
    let lab = try Lab("ccol")
    defer { lab.close() }
    let output = try temporaryDirectory("ccol") + "/bundle"
    let started = ChildProcess.start(
      [
        "/usr/sbin/ip", "netns", "exec", lab.node, binary, "collect", "--output", output, "--capture-seconds",
        "4",
        "--timeout", "20",
      ])
    guard case .success(let collect) = started else {
      throw LabFailure(message: "cannot start collect")
    }
    // The capture is the last item: drive once the tools are done.
    #expect(collect.waitForError(containing: "collect: ip addr", timeout: .seconds(60)))
    usleep(500_000)
    let made = try lab.drive(10)
    #expect(made == 10)
    let outcome = collect.wait(timeout: .seconds(60))
    #expect(outcome.status == 0, "\(String(decoding: outcome.errorOutput, as: UTF8.self))")
    let manifest = try String(contentsOfFile: output + "/manifest.json", encoding: .utf8)
    #expect(manifest.contains("\"file\": \"capture/capture-00001.pcapng\""))
    #expect(manifest.contains("\"kind\": \"pcap\""))
    #expect(manifest.contains(", 0 dropped"))
    let file = output + "/capture/capture-00001.pcapng"
    let report = try run(binary, ["pcap", file, "-f", "json", "--service", "10.96.0.10:80"])
    #expect(report.status == 0, "\(report.stderr)")
    #expect(report.stdout.contains("\"connections\": \(made)"))
    #expect(try captureFiles(output + "/capture").partial.isEmpty)
  }
}
