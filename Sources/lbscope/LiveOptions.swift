import ArgumentParser
import LBConntrack
import LBCore
import LBLive

/// `--live` and its filters, for `lbscope conntrack`.
struct LiveConntrackOptions: ParsableArguments {
  @Flag(help: "Read the kernel's conntrack table over netlink (needs CAP_NET_ADMIN).")
  var live = false

  @Option(help: "Only entries in this conntrack zone (with --live).")
  var zone: UInt16?

  @Option(
    help: ArgumentHelp("Only entries with this conntrack mark (with --live); 0x… for hex.", valueName: "MARK")
  )
  var mark: String?

  @Option(
    name: .customLong("dst"),
    help: ArgumentHelp(
      "Only entries whose original destination is this (with --live).", valueName: "VIP[:PORT]"))
  var destination: String?

  func validate() throws {
    if let mark, Self.parseMark(mark) == nil {
      throw ValidationError("--mark wants a 32-bit number (decimal or 0x…), not '\(mark)'")
    }
    if let destination, Self.parseDestination(destination) == nil {
      throw ValidationError("--dst wants VIP, VIP:PORT, IPv6 or [IPv6]:PORT, not '\(destination)'")
    }
  }

  var filter: ConntrackFilter {
    let target = destination.flatMap(Self.parseDestination)
    return ConntrackFilter(
      zone: zone, mark: mark.flatMap(Self.parseMark), destination: target?.address,
      destinationPort: target?.port)
  }

  static func parseMark(_ text: String) -> UInt32? {
    text.hasPrefix("0x") || text.hasPrefix("0X") ? UInt32(text.dropFirst(2), radix: 16) : UInt32(text)
  }

  static func parseDestination(_ text: String) -> (address: IPAddress, port: UInt16?)? {
    if let endpoint = Endpoint(text) { return (endpoint.address, endpoint.port) }
    if let address = IPAddress(text) { return (address, nil) }
    return nil
  }

  /// The label live inputs carry in reports.
  static let path = "netlink:conntrack"

  /// Dumps the live table into `observe`; exits with the documented code when netlink fails.
  static func read(
    filter: ConntrackFilter, input: Int, observe: (ConnectionObservation) -> Void
  ) -> InputSummary {
    var summary = InputSummary(path: path, kind: .liveConntrack)
    do {
      let table = try LiveConntrackTable()
      var incomplete = 0
      let sent = try table.dump(filter: filter) { entry in
        summary.records += 1
        if let observation = entry.observation(input: input) {
          observe(observation)
        } else {
          incomplete += 1
        }
      }
      if !filter.isEmpty { summary.notes.append("\(summary.records) of \(sent) entries passed the filter") }
      if incomplete > 0 { summary.notes.append("\(incomplete) entries had an incomplete tuple") }
    } catch {
      Failure(error).exit()
    }
    return summary
  }
}
