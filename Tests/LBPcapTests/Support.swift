import Foundation
import LBCore
import LBPcap

/// The repository root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()
let corpusPcap = repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/corpus/pcap")
let capturesRoot = repositoryRoot.appendingPathComponent("captures")

func corpusFiles() -> [URL] {
  ((try? FileManager.default.contentsOfDirectory(at: corpusPcap, includingPropertiesForKeys: nil)) ?? [])
    .filter { $0.pathExtension == "pcap" || $0.pathExtension == "pcapng" }
    .sorted { $0.path < $1.path }
}

/// tshark's path, when installed.
let tsharkPath: String? = ["/usr/bin/tshark", "/usr/local/bin/tshark"].first {
  FileManager.default.isExecutableFile(atPath: $0)
}

struct ToolRun {
  var status: Int32
  var stdout: String
  var stderr: String
}

/// Runs a program with fixed arguments and collects its output.
func runTool(_ path: String, _ arguments: [String]) throws -> ToolRun {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: path)
  process.arguments = arguments
  let out = Pipe()
  let err = Pipe()
  process.standardOutput = out
  process.standardError = err
  process.standardInput = FileHandle.nullDevice
  try process.run()
  let outData = out.fileHandleForReading.readDataToEndOfFile()
  let errData = err.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  return ToolRun(
    status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
    stderr: String(decoding: errData, as: UTF8.self))
}

/// Reads a capture: its summary, packets' decode outcomes, and each decoded TCP/UDP packet's
/// tuple (`proto src sport dst dport`, innermost, ICMP errors left out).
struct FileReading {
  var summary: InputSummary
  var packets = 0
  var tuples: [String] = []
  var timestamps: [Int64] = []
}

func readCapture(_ path: String) throws(PcapError) -> FileReading {
  let reader = try CaptureFileReader(path: path)
  var decoder = PacketDecoder()
  var reading = FileReading(summary: reader.summary)
  while let frame = try reader.next() {
    reading.packets += 1
    reading.timestamps.append(frame.timestamp)
    switch decoder.decode(frame) {
    case .ip:
      let p = decoder.packet
      if p.hasTransport && (p.proto == 6 || p.proto == 17) && !p.icmpError {
        let s = p.source.address(v6: p.v6)
        let d = p.destination.address(v6: p.v6)
        reading.tuples.append("\(p.proto) \(s) \(p.sourcePort) \(d) \(p.destinationPort)")
      }
    case .notIP where decoder.packet.tunnels > 0 && decoder.packet.hasTransport:
      // A tunnel carrying no IP (ARP over VXLAN): its innermost IP packet is the tunnel's.
      let p = decoder.packet
      let s = p.source.address(v6: p.v6)
      let d = p.destination.address(v6: p.v6)
      reading.tuples.append("\(p.proto) \(s) \(p.sourcePort) \(d) \(p.destinationPort)")
    case .issue(let kind, let reason):
      reader.record(kind, packet: frame.number, reason)
    default:
      break
    }
  }
  reading.summary = reader.summary
  return reading
}

/// Observations from the whole trace pipeline.
func observations(_ paths: [String], filter: String? = nil) throws(PcapError) -> (
  [ConnectionObservation], TraceReader
) {
  var options = TraceOptions()
  options.filter = filter
  let trace = try TraceReader(paths: paths, options: options)
  var out: [ConnectionObservation] = []
  try trace.run { out.append($0) }
  return (out, trace)
}
