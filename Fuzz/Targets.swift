import LBConntrack
import LBCore
import LBPcap
import LBReport
import LBRules
import LBYAML

#if canImport(Glibc)
  import Glibc
#endif

/// One fuzz target: a name for scripts/fuzz and the function an input goes through. Every target
/// drives a reader the way lbscope does, as far as its results; a trap, a sanitizer report, a
/// timeout or a memory blow-up is a finding.
struct FuzzTarget: Sendable {
  let name: String
  let run: @Sendable (UnsafeRawBufferPointer) -> Void

  static let all: [FuzzTarget] = [
    FuzzTarget(name: "conntrack-line", run: conntrackLines),
    FuzzTarget(name: "conntrack-xml", run: conntrackXML),
    FuzzTarget(name: "conntrack-reader", run: conntrackReader),
    FuzzTarget(name: "iptables-save", run: iptablesSave),
    FuzzTarget(name: "nft", run: nft),
    FuzzTarget(name: "ipvs", run: ipvs),
    FuzzTarget(name: "xt-recent", run: xtRecent),
    FuzzTarget(name: "pcap-file", run: pcapFile),
    FuzzTarget(name: "packet", run: packet),
    FuzzTarget(name: "json", run: json),
    FuzzTarget(name: "k8s-yaml", run: k8sYAML),
  ]
}

/// Calls `body` for each line of `bytes` (without its `\n`), numbered from 1.
func forEachLine(_ bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, Int) -> Void) {
  var start = 0
  var number = 1
  for i in 0..<bytes.count where bytes[i] == 0x0A {
    body(UnsafeRawBufferPointer(rebasing: bytes[start..<i]), number)
    start = i + 1
    number += 1
  }
  if start < bytes.count { body(UnsafeRawBufferPointer(rebasing: bytes[start...]), number) }
}

/// Keeps a value alive and observable so the optimizer cannot drop the work that made it.
@inline(never) func consume<T>(_ value: T) { withExtendedLifetime(value) {} }

// MARK: - Conntrack

/// `conntrack -L`/`-E` and /proc/net/nf_conntrack lines, one parser call per line, each result
/// turned into an observation as the reader does.
/// Also differential: whatever the fast path (`CommonLineParser`) accepts, the general parser
/// must decode to a clean entry with the same observation, and the fast path must decode the
/// same with and without an `AddressMemo` (one per input, as one per reading thread); a
/// disagreement stops the run as a crash.
func conntrackLines(_ bytes: UnsafeRawBufferPointer) {
  let memo = AddressMemo()
  forEachLine(bytes) { line, number in
    let general = ConntrackLineParser.parse(line, number: number)
    if case .entry(let entry) = general {
      consume(entry.observation(input: 0))
    }
    let remembered = CommonLineParser.parse(line, number: number, memo: memo)
    if let fast = CommonLineParser.parse(line, number: number) {
      guard case .entry(let entry) = general, entry.observation(input: 0) == fast.observation(input: 0) else {
        fatalError("CommonLineParser and ConntrackLineParser disagree on line \(number)")
      }
    }
    guard remembered == CommonLineParser.parse(line, number: number) else {
      fatalError("CommonLineParser decodes line \(number) differently with its AddressMemo")
    }
  }
}

/// `conntrack -L -o xml`: flows assembled across lines, then parsed.
func conntrackXML(_ bytes: UnsafeRawBufferPointer) {
  var assembler = ConntrackXMLAssembler()
  forEachLine(bytes) { line, number in
    assembler.feed(line, number: number) { parsed in
      if case .entry(let entry) = parsed { consume(entry.observation(input: 0)) }
    }
  }
  consume(assembler.sawDocument)
}

/// A whole conntrack file through `ConntrackReader` (format detection, events, XML, limits).
func conntrackReader(_ bytes: UnsafeRawBufferPointer) {
  guard let path = Scratch.write(bytes) else { return }
  var count = 0
  consume(try? ConntrackReader().read(path: path, input: 0) { _ in count += 1 })
  consume(count)
}

// MARK: - Rules

/// `iptables-save` text through the dump reader and the service assembly.
func iptablesSave(_ bytes: UnsafeRawBufferPointer) {
  let (dump, summary) = IptablesSaveReader.read(text: String(decoding: bytes, as: UTF8.self), path: "fuzz")
  consume(IptablesServices(dump: dump, input: 0).services())
  consume(summary)
}

/// `nft list ruleset`, `nft list table` and `nft -f` transactions.
func nft(_ bytes: UnsafeRawBufferPointer) {
  guard let path = Scratch.write(bytes) else { return }
  consume(try? NFTRulesReader.read(path: path, input: 0))
}

/// `ipvsadm -Ln` (with `--stats`, `--rate`, `--exact`, `-c`, `--persistent-conn`) outputs.
func ipvs(_ bytes: UnsafeRawBufferPointer) {
  guard let path = Scratch.write(bytes) else { return }
  if var read = try? IPVSRulesReader.readAll(path: path, input: 0) {
    consume(IPVSRulesReader.link(read.unlinkedPins, into: &read.services))
    for service in read.services { consume(IPVSWeightsUnevenness.check(service)) }
  }
}

/// /proc/net/xt_recent/NAME lines, and the jiffies clock line lbscope reads beside them.
func xtRecent(_ bytes: UnsafeRawBufferPointer) {
  let text = String(decoding: bytes, as: UTF8.self)
  let (pins, summary) = XTRecentReader.read(text: text, list: "KUBE-SEP-FUZZ", path: "fuzz")
  consume(pins)
  consume(summary)
  if let clock = JiffiesClock.parse(text) {
    for pin in pins { consume(pin) }
    consume(clock.age(of: 0))
  }
}

// MARK: - Packets

/// A whole capture file (pcap or pcapng) through `TraceReader`: file structure, decoding, flows
/// and the NAT-leg join, as `lbscope pcap` runs them, with a small flow table so the limit path
/// is exercised too.
func pcapFile(_ bytes: UnsafeRawBufferPointer) {
  guard let path = Scratch.write(bytes) else { return }
  var options = TraceOptions()
  options.maxFlows = 64
  guard let reader = try? TraceReader(paths: [path], options: options) else { return }
  var count = 0
  try? reader.run { _ in count += 1 }
  consume(count)
  consume(reader.summaries)
}

/// Link types the `packet` target picks from with its first input byte.
let packetLinkTypes: [LinkType] = [.ethernet, .linuxSLL2, .linuxSLL, .raw, .ipv4, .ipv6, .null, .loop]

/// One frame: byte 0 picks the link type, the rest is the frame, decoded down through VLANs,
/// MPLS, PPPoE, IP, tunnels (GRE, VXLAN, Geneve, IP-in-IP) and transport, then accounted to a
/// flow table that is finished at once.
func packet(_ bytes: UnsafeRawBufferPointer) {
  guard let first = bytes.first else { return }
  let linkType = packetLinkTypes[Int(first) % packetLinkTypes.count]
  let frame = ByteView(UnsafeRawBufferPointer(rebasing: bytes[1...]))
  var decoder = PacketDecoder()
  let table = FlowTable(maxFlows: 4)
  var flows = 0
  switch decoder.decode(frame, linkType: linkType) {
  case .ip:
    if decoder.packet.icmpError {
      table.noteICMPError(decoder.packet)
    } else {
      table.add(decoder.packet, time: 1, input: 0, number: 1)
      table.takeFinished { _ in flows += 1 }
    }
  case .notIP, .fragment, .issue:
    break
  }
  table.finishAll { _ in flows += 1 }
  consume(flows)
}

// MARK: - JSON

/// kubectl and lbscope JSON: the parser, then the report reader and the `--k8s` names reader
/// over what it parsed.
func json(_ bytes: UnsafeRawBufferPointer) {
  let array = Array(bytes)
  guard let document = try? JSONParser().parse(array, path: "fuzz.json") else { return }
  consume(try? ReportReader(path: "fuzz.json").read(document))
  consume(try? KubernetesNames.names(in: document, path: "fuzz.json"))
}

// MARK: - YAML

/// `--k8s` listings as `kubectl … -o yaml` writes them: the content check, the alias scan,
/// Yams (libyaml) and the conversion to JSON, then the names reader, as `lbscope report` runs it.
func k8sYAML(_ bytes: UnsafeRawBufferPointer) {
  let array = Array(bytes)
  consume(KubernetesListing.format(of: array))
  consume(try? YAMLReader().parse(array, path: "fuzz.yaml"))
  consume(try? KubernetesListing.names(from: array, path: "fuzz.yaml"))
}
