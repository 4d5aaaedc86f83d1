import LBCore

/// What one line of conntrack text turned out to be.
public enum ConntrackLine: Sendable {
  /// A connection.
  case entry(ConntrackEntry)
  /// A connection recovered from a damaged line (its start was cut, for example); the issue
  /// says what was wrong.
  case recovered(ConntrackEntry, InputIssue)
  /// conntrack's closing line, `N flow entries have been shown.`, with N.
  case summary(declaredEntries: Int?)
  /// Nothing but white space.
  case blank
  /// A line that is not a usable connection.
  case issue(InputIssue)
}

/// Decodes one line of conntrack's text formats.
///
/// Accepted shapes (conntrack-tools 1.4.x, `conntrack(8)`; kernel `nf_conntrack_standalone.c`):
///
///     [prefix] [EVENT] [l3name l3num] l4name l4num [timeout] [STATE] k=v… [FLAG]… k=v… [FLAG]… k=v…
///
/// - `prefix` is an optional `[seconds.micros]` timestamp (`-o timestamp`) or a line number
///   from `cat -n`;
/// - `EVENT` is `[NEW]`, `[UPDATE]` or `[DESTROY]` (`conntrack -E`);
/// - `l3name l3num` (`ipv4 2`, `ipv6 10`) appears with `-o extended` and in
///   `/proc/net/nf_conntrack`;
/// - the first `src= dst= sport= dport=` set is the original direction, the second the reply;
///   `packets= bytes=` and `zone=` belong to the direction they follow;
/// - flags are `[UNREPLIED]`, `[ASSURED]`, `[OFFLOAD]`, `[HW_OFFLOAD]`; trailing keys are
///   `mark= secctx= zone= use= id= delta-time= labels=` and vendor additions, which are skipped.
///
/// A line whose start was cut (`cp 6 …` for `tcp 6 …`, or `6 46 TIME_WAIT …`) is recovered from
/// its protocol number when both tuples are whole, and reported as truncated.
public enum ConntrackLineParser {
  public static func parse(_ line: UnsafeRawBufferPointer, number: Int) -> ConntrackLine {
    var entry = ConntrackEntry()
    entry.line = number

    var i = 0
    let count = line.count

    // Header state.
    var inBody = false
    var protoKnown = false
    var protoFromName = false
    var numbersAfterProto = 0
    var looseNumbers: (UInt64?, UInt64?) = (nil, nil)
    var looseNumberCount = 0
    var damagedHeader = false
    var unknownTokenText: UnsafeRawBufferPointer? = nil
    var tokens = 0

    // Body state.
    var direction = 0  // 0 original, 1 reply
    var sawKeyValue = false
    var problem: InputIssue? = nil

    func fail(_ kind: InputIssueKind, _ message: String) {
      if problem == nil { problem = InputIssue(kind: kind, line: number, message: message) }
    }

    while i < count {
      while i < count && Bytes.isSpace(line[i]) { i += 1 }
      if i >= count { break }
      let start = i
      var equalsAt = -1  // found while scanning, so key=value tokens need no second pass
      while i < count {
        let byte = line[i]
        if Bytes.isSpace(byte) { break }
        if byte == 0x3D && equalsAt < 0 { equalsAt = i - start }  // "="
        i += 1
      }
      let token = UnsafeRawBufferPointer(rebasing: line[start..<i])
      tokens += 1

      // Bracketed tokens: events and timestamps in the header, flags in the body.
      if token[0] == 0x5B {  // "["
        if Bytes.equals(token, "[UNREPLIED]") {
          entry.unreplied = true
        } else if Bytes.equals(token, "[ASSURED]") {
          entry.assured = true
        } else if Bytes.equals(token, "[OFFLOAD]") || Bytes.equals(token, "[HW_OFFLOAD]") {
          entry.offloaded = true
        } else if !inBody && Bytes.equals(token, "[NEW]") {
          entry.event = .new
        } else if !inBody && Bytes.equals(token, "[UPDATE]") {
          entry.event = .update
        } else if !inBody && Bytes.equals(token, "[DESTROY]") {
          entry.event = .destroy
        } else if !inBody, token.count > 2, token[token.count - 1] == 0x5D,
          let seconds = timestamp(UnsafeRawBufferPointer(rebasing: token[1..<(token.count - 1)]))
        {
          entry.eventTime = seconds
        }
        // Other flags ([SEEN_REPLY], vendor ones) are skipped.
        continue
      }

      // key=value tokens.
      if equalsAt >= 0 {
        let equals = equalsAt
        inBody = true
        sawKeyValue = true
        let key = UnsafeRawBufferPointer(rebasing: token[..<equals])
        let value = UnsafeRawBufferPointer(rebasing: token[(equals + 1)...])
        switch key.count {
        case 3:
          if Bytes.equals(key, "src") {
            if entry.original.source != nil && direction == 0 { direction = 1 }
            guard let address = IPAddress.parse(value) else {
              fail(.malformed, "bad address src=\(Bytes.text(value))")
              continue
            }
            if direction == 0 {
              entry.original.source = address
            } else {
              if entry.reply.source != nil {
                fail(.malformed, "more than two src= tuples")
                continue
              }
              entry.reply.source = address
            }
          } else if Bytes.equals(key, "dst") {
            guard let address = IPAddress.parse(value) else {
              fail(.malformed, "bad address dst=\(Bytes.text(value))")
              continue
            }
            if direction == 0 {
              entry.original.destination = address
            } else {
              entry.reply.destination = address
            }
          } else if Bytes.equals(key, "use") {
            entry.use = Bytes.decimal(value).flatMap { UInt32(exactly: $0) }
          }
        case 5:
          if Bytes.equals(key, "sport") || Bytes.equals(key, "dport") {
            guard let port = Bytes.decimal(value).flatMap({ UInt16(exactly: $0) }) else {
              fail(.malformed, "bad port \(Bytes.text(token))")
              continue
            }
            let isSource = key[0] == 0x73  // "s"
            if direction == 0 {
              if isSource {
                entry.original.sourcePort = port
              } else {
                entry.original.destinationPort = port
              }
            } else {
              if isSource {
                entry.reply.sourcePort = port
              } else {
                entry.reply.destinationPort = port
              }
            }
          } else if Bytes.equals(key, "bytes") {
            let bytes = Bytes.decimal(value)
            if direction == 0 { entry.original.bytes = bytes } else { entry.reply.bytes = bytes }
          }
        case 7:
          if Bytes.equals(key, "packets") {
            let packets = Bytes.decimal(value)
            if direction == 0 {
              entry.original.packets = packets
            } else {
              entry.reply.packets = packets
            }
          }
        case 4:
          if Bytes.equals(key, "mark") {
            entry.mark = Bytes.decimal(value).flatMap { UInt32(exactly: $0) }
          } else if Bytes.equals(key, "zone") {
            entry.zone = Bytes.decimal(value).flatMap { UInt16(exactly: $0) }
          } else if Bytes.equals(key, "type") || Bytes.equals(key, "code") {
            let byte = Bytes.decimal(value).flatMap { UInt8(exactly: $0) }
            let isType = key[0] == 0x74  // "t"
            if direction == 0 {
              if isType { entry.original.icmpType = byte } else { entry.original.icmpCode = byte }
            } else {
              if isType { entry.reply.icmpType = byte } else { entry.reply.icmpCode = byte }
            }
          }
        case 2:
          if Bytes.equals(key, "id") {
            // Inside an ICMP tuple `id=` follows `code=`; elsewhere it is the entry's id.
            let isICMP = entry.proto == .icmp || entry.proto == .icmpv6
            if isICMP && direction == 0 && entry.original.icmpCode != nil
              && entry.original.icmpID == nil
            {
              entry.original.icmpID = Bytes.decimal(value).flatMap { UInt16(exactly: $0) }
            } else if isICMP && direction == 1 && entry.reply.icmpCode != nil
              && entry.reply.icmpID == nil
            {
              entry.reply.icmpID = Bytes.decimal(value).flatMap { UInt16(exactly: $0) }
            } else {
              entry.id = Bytes.decimal(value).flatMap { UInt32(exactly: $0) }
            }
          }
        default:
          break  // secctx=, delta-time=, labels=, srckey=, vendor keys: skipped
        }
        continue
      }

      if inBody {  // vendor words after the tuples
        entry.strayWords = true
        continue
      }

      // Header words.
      if let number = Bytes.decimal(token) {
        if protoKnown {
          numbersAfterProto += 1
          if numbersAfterProto == 2 { entry.timeout = UInt32(clamping: number) }
          if numbersAfterProto == 1 {
            if !protoFromName, let raw = UInt8(exactly: number) {
              entry.proto = TransportProtocol(rawValue: raw)  // "unknown 2": the number decides
            } else if number != UInt64(entry.proto.rawValue) {
              fail(.malformed, "protocol name and number disagree")
            }
          }
        } else {
          if looseNumberCount == 0 {
            looseNumbers.0 = number
          } else if looseNumberCount == 1 {
            looseNumbers.1 = number
          }
          looseNumberCount += 1
        }
        continue
      }
      if let proto = protocolName(token) {
        // Numbers seen before the protocol name are a `cat -n` prefix or the l3 number.
        entry.proto = proto
        protoKnown = true
        protoFromName = !Bytes.equals(token, "unknown")
        looseNumberCount = 0
        continue
      }
      if Bytes.equals(token, "ipv4") || Bytes.equals(token, "ipv6") {
        looseNumberCount = 0
        continue
      }
      if let state = connectionState(token) {
        entry.state = state
        // Without a protocol name, the numbers before the state are `l4num timeout`.
        if !protoKnown && looseNumberCount > 0 {
          damagedHeader = true
        }
        continue
      }
      damagedHeader = true
      if unknownTokenText == nil { unknownTokenText = token }
    }

    if tokens == 0 { return .blank }
    if !sawKeyValue {
      if Bytes.contains(line, "flow entries have been") || Bytes.contains(line, "entries have been shown") {
        return .summary(declaredEntries: firstNumberBefore(line, "flow entries"))
      }
      return .issue(
        InputIssue(
          kind: .unsupported, line: number,
          message: "not a conntrack entry: \(Bytes.text(line, limit: 40))"))
    }
    if let problem { return .issue(problem) }
    if entry.original.source == nil && entry.original.destination == nil && !protoKnown {
      // key=value text without a tuple: `conntrack -S` statistics and the like.
      return .issue(
        InputIssue(
          kind: .unsupported, line: number,
          message: "not a conntrack entry: \(Bytes.text(line, limit: 40))"))
    }

    if !protoKnown {
      // The start of the line is missing; the first number left is the protocol number.
      damagedHeader = true
      if let first = looseNumbers.0, let proto = UInt8(exactly: first), proto != 0 {
        entry.proto = TransportProtocol(rawValue: proto)
        if looseNumberCount >= 2, let timeout = looseNumbers.1 {
          entry.timeout = UInt32(clamping: timeout)
        }
      } else if entry.state != nil {
        entry.proto = .tcp  // only TCP has these state names without SCTP's protocol word
      } else {
        return .issue(
          InputIssue(
            kind: .truncated, line: number,
            message: "the start of the line is missing and its protocol cannot be told"))
      }
    }

    guard entry.original.fiveTuple(entry.proto) != nil else {
      return .issue(
        InputIssue(kind: .truncated, line: number, message: "the original tuple is incomplete"))
    }
    guard entry.reply.fiveTuple(entry.proto) != nil else {
      return .issue(
        InputIssue(kind: .truncated, line: number, message: "the reply tuple is incomplete"))
    }
    if damagedHeader {
      let what =
        unknownTokenText.map { "unknown word \"\(Bytes.text($0, limit: 20))\"" } ?? "no protocol name"
      return .recovered(
        entry,
        InputIssue(
          kind: .truncated, line: number,
          message: "the start of the line is damaged (\(what)); recovered as \(entry.proto)"))
    }
    return .entry(entry)
  }

  static func protocolName(_ token: UnsafeRawBufferPointer) -> TransportProtocol? {
    switch token.count {
    case 3:
      if Bytes.equals(token, "tcp") { return .tcp }
      if Bytes.equals(token, "udp") { return .udp }
      if Bytes.equals(token, "gre") { return .gre }
    case 4:
      if Bytes.equals(token, "sctp") { return .sctp }
      if Bytes.equals(token, "icmp") { return .icmp }
      if Bytes.equals(token, "dccp") { return .dccp }
    case 6:
      if Bytes.equals(token, "icmpv6") { return .icmpv6 }
    case 7:
      if Bytes.equals(token, "udplite") { return .udplite }
      if Bytes.equals(token, "unknown") { return TransportProtocol(rawValue: 255) }
    default:
      break
    }
    return nil
  }

  /// State names, grouped by length for a quick match.
  static let states: [[(name: [UInt8], state: ConnectionState)]] = {
    var table = [[(name: [UInt8], state: ConnectionState)]](repeating: [], count: 20)
    for state in ConnectionState.allCases {
      let name = Array(state.name.utf8)
      table[name.count].append((name, state))
    }
    return table
  }()

  static func connectionState(_ token: UnsafeRawBufferPointer) -> ConnectionState? {
    guard token.count < 20, token[0] >= 0x41, token[0] <= 0x5A else { return nil }
    // The states nearly every TCP entry has, without the table walk.
    if Bytes.equals(token, "ESTABLISHED") { return .established }
    if Bytes.equals(token, "TIME_WAIT") { return .timeWait }
    for candidate in states[token.count] where candidate.name.elementsEqual(token) {
      return candidate.state
    }
    return nil
  }

  static func timestamp(_ text: UnsafeRawBufferPointer) -> Double? {
    guard let dot = text.firstIndex(of: 0x2E) else {
      return Bytes.decimal(text).map(Double.init)
    }
    guard let whole = Bytes.decimal(UnsafeRawBufferPointer(rebasing: text[..<dot])),
      let fraction = Bytes.decimal(UnsafeRawBufferPointer(rebasing: text[(dot + 1)...]))
    else { return nil }
    var scale = 1.0
    for _ in (dot + 1)..<text.count { scale *= 10 }
    return Double(whole) + Double(fraction) / scale
  }

  static func firstNumberBefore(_ line: UnsafeRawBufferPointer, _ marker: StaticString) -> Int? {
    // "... (conntrack-tools): 364 flow entries have been shown."
    guard let base = line.baseAddress else { return nil }
    let markerCount = marker.utf8CodeUnitCount
    guard line.count >= markerCount else { return nil }
    var position = -1
    for start in 0...(line.count - markerCount)
    where Bytes.equals(UnsafeRawBufferPointer(start: base + start, count: markerCount), marker) {
      position = start
      break
    }
    guard position > 0 else { return nil }
    var end = position
    while end > 0 && Bytes.isSpace(line[end - 1]) { end -= 1 }
    var begin = end
    while begin > 0 && line[begin - 1] &- 0x30 < 10 { begin -= 1 }
    return Bytes.decimal(UnsafeRawBufferPointer(rebasing: line[begin..<end])).map { Int($0) }
  }
}
