import LBCore

/// Walks one packet through a parsed dump the way kube-proxy's own tests do (`tracePacket` in
/// pkg/proxy/iptables/proxier_test.go): from nat PREROUTING (or OUTPUT for a packet the node
/// sends) through every rule that matches, following jumps, splitting at `-m statistic` into
/// branches with their chances, until each branch is DNATed, dropped, rejected or leaves the
/// table untranslated; untranslated branches then cross the filter table's INPUT or FORWARD.
public struct IptablesTrace {
  public let dump: IptablesDump
  /// The node's own addresses (`--dst-type LOCAL`); unknown when empty.
  public var localAddresses: [IPAddress]
  /// xt_recent lists and the sources they hold, for `-m recent --rcheck`; unknown when `nil`.
  public var recentLists: [String: Set<IPAddress>]?
  /// Longest walk recorded, in steps; deeper walks are cut and say so.
  public var maxSteps = 400

  public init(
    dump: IptablesDump, localAddresses: [IPAddress] = [], recentLists: [String: Set<IPAddress>]? = nil
  ) {
    self.dump = dump
    self.localAddresses = localAddresses
    self.recentLists = recentLists
  }

  struct Branch {
    var chance: Double
    var mark: UInt32 = 0
    var masqueraded = false
    var verdict: String?
    var destination: Endpoint?
    var chain: String
  }

  final class Log {
    var steps: [PacketTrace.Step] = []
    var assumptions: [String] = []
    var cut = false
    func assume(_ text: String) { if !assumptions.contains(text) { assumptions.append(text) } }
  }

  public func trace(source: Endpoint, destination: Endpoint, proto: TransportProtocol = .tcp) -> PacketTrace {
    var result = PacketTrace(source: source, destination: destination, proto: proto)
    let log = Log()
    let packet = Packet(source: source, destination: destination, proto: proto)
    let fromNode = localAddresses.contains(source.address)
    let hook = fromNode ? "OUTPUT" : "PREROUTING"
    var branches: [Branch]
    if let start = dump.chain(hook) ?? dump.chain("KUBE-SERVICES") {
      branches = run(start, depth: 0, branch: Branch(chance: 1, chain: dump.chains[start].name), packet, log)
    } else {
      log.assume("the dump has no nat PREROUTING, OUTPUT or KUBE-SERVICES chain")
      branches = [Branch(chance: 1, chain: "-")]
    }
    if localAddresses.isEmpty {
      log.assume("the node's own addresses are unknown (give --node-ip): `--dst-type LOCAL` matched nothing")
    }
    var outcomes: [PacketTrace.Outcome] = []
    for var b in branches {
      if b.verdict == nil {
        // Untranslated: the filter table decides (KUBE-EXTERNAL-SERVICES, "has no endpoints").
        let filterHook =
          localAddresses.contains(destination.address) ? "INPUT" : fromNode ? "OUTPUT" : "FORWARD"
        if let chain = dump.chain(filterHook, table: "filter") {
          let after = run(
            chain, depth: 0,
            branch: Branch(chance: b.chance, mark: b.mark, masqueraded: b.masqueraded, chain: b.chain),
            packet, log)
          for a in after {
            outcomes.append(
              PacketTrace.Outcome(
                destination: nil, verdict: a.verdict ?? "accept", chance: a.chance,
                masqueraded: a.masqueraded, chain: a.chain))
          }
          continue
        }
        b.verdict = "accept"
      }
      outcomes.append(
        PacketTrace.Outcome(
          destination: b.destination, verdict: b.verdict ?? "accept", chance: b.chance,
          masqueraded: b.masqueraded, chain: b.chain))
    }
    // Merge equal outcomes (the same endpoint reached by affinity and by chance).
    var merged: [PacketTrace.Outcome] = []
    for o in outcomes where o.chance > 0 {
      if let i = merged.firstIndex(where: {
        $0.destination == o.destination && $0.verdict == o.verdict && $0.chain == o.chain
      }) {
        merged[i].chance += o.chance
        merged[i].masqueraded = merged[i].masqueraded || o.masqueraded
      } else {
        merged.append(o)
      }
    }
    result.outcomes = merged
    result.steps = log.steps
    result.assumptions = log.assumptions
    if log.cut { result.assumptions.append("the walk was cut after \(maxSteps) steps") }
    return result
  }

  struct Packet {
    var source: Endpoint
    var destination: Endpoint
    var proto: TransportProtocol
  }

  func step(_ log: Log, _ depth: Int, _ chain: Int, _ line: Int?, _ text: String, _ chance: Double) {
    guard log.steps.count < maxSteps else {
      log.cut = true
      return
    }
    let c = dump.chains[chain]
    log.steps.append(
      PacketTrace.Step(depth: depth, table: c.table, chain: c.name, line: line, text: text, chance: chance))
  }

  /// Runs the branch through `chain`. Returned branches either carry a verdict or fell off the
  /// end / hit RETURN (then the caller continues after its jump).
  func run(_ chain: Int, depth: Int, branch: Branch, _ packet: Packet, _ log: Log) -> [Branch] {
    guard depth < 32 else {
      log.assume("jumps nested deeper than 32 chains were not followed")
      return [branch]
    }
    step(log, depth, chain, nil, "enter", branch.chance)
    var live = [branch]
    var done: [Branch] = []
    for r in dump.chains[chain].rules {
      if live.isEmpty { break }
      let rule = dump.rules[r]
      var next: [Branch] = []
      for var b in live {
        let p = matchChance(rule, packet, mark: b.mark, log)
        if p < 1 {
          next.append(
            Branch(chance: b.chance * (1 - p), mark: b.mark, masqueraded: b.masqueraded, chain: b.chain))
        }
        guard p > 0 else { continue }
        b.chance *= p
        let why = p < 1 ? "probability \(NumberText.decimal(p, places: 11)): " : ""
        switch rule.target {
        case .jump(let t), .goto(let t):
          step(
            log, depth, chain, rule.line, why + "jump to \(dump.chains[t].name)" + describe(rule), b.chance)
          var inner = b
          inner.chain = dump.chains[t].name
          for out in run(t, depth: depth + 1, branch: inner, packet, log) {
            if out.verdict != nil {
              done.append(out)
            } else if case .goto = rule.target {
              done.append(out)
            } else {
              var back = out
              back.chain = b.chain
              next.append(back)
            }
          }
        case .dnat(let endpoint):
          step(log, depth, chain, rule.line, why + "DNAT to \(endpoint.map(\.description) ?? "?")", b.chance)
          b.verdict = "dnat"
          b.destination = endpoint
          b.masqueraded = b.masqueraded || (b.mark & 0x4000 != 0)
          b.chain = dump.chains[chain].name
          done.append(b)
        case .mark(let change):
          b.mark = change.apply(b.mark)
          if change.setsBits & 0x4000 != 0 { b.masqueraded = true }
          step(log, depth, chain, rule.line, why + "set mark 0x\(String(b.mark, radix: 16))", b.chance)
          next.append(b)
        case .accept, .drop, .reject, .masquerade, .snat:
          let verdict: String
          switch rule.target {
          case .drop: verdict = "drop"
          case .reject: verdict = "reject"
          default: verdict = "accept"
          }
          step(log, depth, chain, rule.line, why + verdict.uppercased() + describe(rule), b.chance)
          b.verdict = verdict
          b.chain = dump.chains[chain].name
          done.append(b)
        case .return:
          step(log, depth, chain, rule.line, why + "RETURN", b.chance)
          done.append(b)
        case .none, .other:
          next.append(b)
        }
      }
      live = next
    }
    return done + live
  }

  func describe(_ rule: IptablesRule) -> String {
    rule.comment.map { " (\"\($0)\")" } ?? ""
  }

  /// The chance that `rule` matches: 0 or 1, or the statistic probability.
  func matchChance(_ rule: IptablesRule, _ packet: Packet, mark: UInt32, _ log: Log) -> Double {
    if let s = rule.source, s.contains(packet.source.address) == rule.sourceNegated { return 0 }
    if let d = rule.destination, d.contains(packet.destination.address) == rule.destinationNegated {
      return 0
    }
    if let p = rule.proto, (p == packet.proto) == rule.protoNegated { return 0 }
    if let ports = rule.destinationPort,
      ports.contains(packet.destination.port) == rule.destinationPortNegated
    {
      return 0
    }
    if let ports = rule.sourcePort, !ports.contains(packet.source.port) { return 0 }
    if let local = rule.destinationLocal, localAddresses.contains(packet.destination.address) != local {
      return 0
    }
    if let local = rule.sourceLocal, localAddresses.contains(packet.source.address) != local { return 0 }
    if let m = rule.mark, (mark & m.mask == m.value) == rule.markNegated { return 0 }
    if rule.matchesNewConnection == false { return 0 }
    if let recent = rule.recent, recent.command == .rcheck || recent.command == .update {
      if let lists = recentLists {
        if lists[recent.name]?.contains(packet.source.address) != true { return 0 }
      } else {
        log.assume("no xt_recent state given: the client is taken as not pinned by affinity")
        return 0
      }
    }
    for other in dump.otherMatches(of: rule) {
      log.assume("`\(other)` matches were taken as matching (a new connection)")
    }
    if rule.nth {
      log.assume("`-m statistic --mode nth` was taken as matching")
      return 1
    }
    return rule.probability ?? 1
  }
}
