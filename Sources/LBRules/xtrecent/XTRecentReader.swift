import LBCore

/// Reads `/proc/net/xt_recent/NAME`: one line per source address the list remembers.
///
/// The kernel prints (net/netfilter/xt_recent.c, `recent_seq_show`):
///
///     src=192.168.50.12 ttl: 64 last_seen: 4295055103 oldest_pkt: 15 4295055025, 4295055031, …
///
/// `last_seen` and the hit timestamps are jiffies; `oldest_pkt` is the ring index of the next
/// timestamp slot, and the list after it holds at most `ip_pkt_list_tot` timestamps (so their
/// count is a lower bound on hits once the ring wrapped). For kube-proxy, the list is an
/// endpoint's affinity list (`KUBE-SEP-…`), and each line is a client pinned to that endpoint.
public enum XTRecentReader {
  public static let maxLineLength = 64 * 1024

  /// Reads `path`; the list name is the file's base name.
  public static func read(path: String, input: Int) throws(RulesReaderError) -> ([PinnedClient], InputSummary)
  {
    var parser = XTRecentParser(list: baseName(path), input: input, path: path)
    try RulesFile.forEachLine(path: path, maxLineLength: maxLineLength) { line, number, overlong in
      parser.feed(line, number: number, overlong: overlong)
    }
    return (parser.pins, parser.summary)
  }

  /// Reads text in memory as the list `list`.
  public static func read(text: String, list: String, input: Int = 0, path: String = "-") -> (
    [PinnedClient], InputSummary
  ) {
    var parser = XTRecentParser(list: list, input: input, path: path)
    var text = text
    text.withUTF8 { buffer in
      RulesFile.forEachLine(in: UnsafeRawBufferPointer(buffer)) { line, number in
        parser.feed(line, number: number, overlong: false)
      }
    }
    return (parser.pins, parser.summary)
  }

  static func baseName(_ path: String) -> String {
    path.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? path
  }
}

struct XTRecentParser {
  let list: String
  let input: Int
  var summary: InputSummary
  var pins: [PinnedClient] = []
  var tokens: [Token] = []

  init(list: String, input: Int, path: String) {
    self.list = list
    self.input = input
    summary = InputSummary(path: path, kind: .xtRecent)
  }

  mutating func feed(_ line: UnsafeRawBufferPointer, number: Int, overlong: Bool) {
    guard line.contains(where: { !RuleText.isSpace($0) }) else { return }
    summary.records += 1
    func issue(_ kind: InputIssueKind, _ message: String) {
      summary.record(InputIssue(kind: kind, line: number, message: message))
    }
    if overlong {
      issue(.malformed, "line longer than \(XTRecentReader.maxLineLength) bytes")
      return
    }
    _ = RuleText.split(line, into: &tokens)
    guard let first = tokens.first, first.hasPrefix("src=") else {
      issue(.malformed, "not an xt_recent line: \(RuleText.excerpt(line))")
      return
    }
    guard let address = IPAddress.parse(UnsafeRawBufferPointer(rebasing: first.bytes.dropFirst(4))) else {
      issue(.malformed, "bad source address \(RuleText.excerpt(first.bytes))")
      return
    }
    var lastSeen: UInt64?
    var stamps = 0
    var i = 1
    var sawOldest = false
    while i < tokens.count {
      let t = tokens[i]
      if t.equals("last_seen:"), i + 1 < tokens.count {
        lastSeen = RuleText.decimal(tokens[i + 1].bytes)
        i += 2
      } else if t.equals("oldest_pkt:"), i + 1 < tokens.count {
        sawOldest = true
        i += 2
        while i < tokens.count {
          var stamp = tokens[i].bytes
          if stamp.last == 0x2C { stamp = UnsafeRawBufferPointer(rebasing: stamp.dropLast()) }  // ","
          if RuleText.decimal(stamp) != nil { stamps += 1 }
          i += 1
        }
      } else {
        i += 1
      }
    }
    guard let lastSeen else {
      issue(.truncated, "no last_seen (cut line)")
      return
    }
    if !sawOldest { issue(.truncated, "no oldest_pkt and hit timestamps (cut line)") }
    pins.append(
      PinnedClient(
        client: address, backend: nil, lastSeenJiffies: lastSeen, hits: stamps > 0 ? stamps : nil,
        source: .xtRecent, list: list, location: SourceLocation(input: input, line: number)))
  }
}

/// The node's clock for turning jiffies into ages: `jiffies` at collection time and `HZ`.
public struct JiffiesClock: Sendable, Equatable {
  public var jiffies: UInt64
  public var hz: Int

  public init(jiffies: UInt64, hz: Int) {
    self.jiffies = jiffies
    self.hz = hz
  }

  /// Seconds between a jiffies stamp and the collection time; `nil` for a stamp in the future.
  public func age(of stamp: UInt64) -> Double? {
    guard hz > 0, stamp <= jiffies else { return nil }
    return Double(jiffies - stamp) / Double(hz)
  }

  /// Parses a `jiffies.txt` as `scripts/lab` writes it (`jiffies: N`, `CONFIG_HZ: N`; from
  /// `/proc/timer_list` and the kernel config). `nil` when either is missing.
  public static func parse(_ text: String) -> JiffiesClock? {
    var jiffies: UInt64?
    var hz: Int?
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: ":", maxSplits: 1)
      guard parts.count == 2 else { continue }
      let value = parts[1].trimmingSpaces
      switch parts[0].trimmingSpaces {
      case "jiffies": jiffies = UInt64(value)
      case "CONFIG_HZ", "HZ": hz = Int(value)
      default: break
      }
    }
    guard let jiffies, let hz, hz > 0 else { return nil }
    return JiffiesClock(jiffies: jiffies, hz: hz)
  }
}

extension Substring {
  var trimmingSpaces: String {
    String(
      drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
  }
}
