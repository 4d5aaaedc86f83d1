import LBCore

/// Decodes the `<flow>` elements of `conntrack -L -o xml` and `conntrack -E -o xml`
/// (conntrack-tools `nfct_snprintf` XML output):
///
///     <flow [type="new|update|destroy"]>
///       <meta direction="original"><layer3 protonum= protoname=><src/><dst/></layer3>
///         <layer4 protonum= protoname=><sport/><dport/></layer4>
///         <counters><packets/><bytes/></counters><zone/></meta>
///       <meta direction="reply">…</meta>
///       <meta direction="independent"><state/><timeout/><mark/><use/><id/><assured/>
///         <unreplied/><zone/></meta>
///     </flow>
///
/// Flows may span lines. A flow longer than `maxFlowLength` bytes is reported as malformed.
public struct ConntrackXMLAssembler {
  public static let maxFlowLength = 16 * 1024

  var buffer: [UInt8] = []
  var collecting = false
  var startLine = 0
  public private(set) var sawDocument = false

  public init() { buffer.reserveCapacity(2048) }

  /// Feeds one line; calls `emit` for each complete flow.
  public mutating func feed(
    _ line: UnsafeRawBufferPointer, number: Int, emit: (ConntrackLine) -> Void
  ) {
    var rest = line
    while !rest.isEmpty {
      if !collecting {
        guard let open = find(rest, "<flow") else {
          if find(rest, "<conntrack") != nil || find(rest, "<?xml") != nil { sawDocument = true }
          return
        }
        collecting = true
        startLine = number
        buffer.removeAll(keepingCapacity: true)
        rest = UnsafeRawBufferPointer(rebasing: rest[open...])
      }
      if let close = find(rest, "</flow>") {
        let end = close + 7
        buffer.append(contentsOf: rest[..<end])
        collecting = false
        emit(buffer.withUnsafeBytes { Self.parseFlow($0, line: startLine) })
        rest = UnsafeRawBufferPointer(rebasing: rest[end...])
      } else {
        buffer.append(contentsOf: rest)
        buffer.append(0x20)
        if buffer.count > Self.maxFlowLength {
          collecting = false
          emit(
            .issue(
              InputIssue(
                kind: .malformed, line: startLine,
                message: "a <flow> element longer than \(Self.maxFlowLength) bytes")))
        }
        return
      }
    }
  }

  /// Call at the end of input: a flow still open was cut.
  public mutating func finish(emit: (ConntrackLine) -> Void) {
    if collecting {
      collecting = false
      emit(
        .issue(
          InputIssue(kind: .truncated, line: startLine, message: "the input ends inside a <flow>")))
    }
  }

  func find(_ haystack: UnsafeRawBufferPointer, _ needle: StaticString) -> Int? {
    let n = needle.utf8CodeUnitCount
    guard haystack.count >= n, let base = haystack.baseAddress else { return nil }
    guard let hit = memmemPointer(base, haystack.count, needle.utf8Start, n) else { return nil }
    return base.distance(to: hit)
  }

  /// Parses one `<flow>…</flow>` element.
  static func parseFlow(_ flow: UnsafeRawBufferPointer, line: Int) -> ConntrackLine {
    var entry = ConntrackEntry()
    entry.line = line
    var direction = -1  // -1 independent/unknown, 0 original, 1 reply
    var protoSet = false
    var i = 0
    let n = flow.count
    var problem: InputIssue? = nil

    while i < n {
      guard flow[i] == 0x3C else {  // "<"
        i += 1
        continue
      }
      // Tag name.
      var j = i + 1
      let closing = j < n && flow[j] == 0x2F
      if closing { j += 1 }
      let nameStart = j
      while j < n, flow[j] != 0x20, flow[j] != 0x3E, flow[j] != 0x2F { j += 1 }
      let name = UnsafeRawBufferPointer(rebasing: flow[nameStart..<j])
      // End of tag.
      var k = j
      while k < n && flow[k] != 0x3E { k += 1 }
      guard k < n else {
        problem = InputIssue(kind: .truncated, line: line, message: "a tag is not closed")
        break
      }
      let attributes = UnsafeRawBufferPointer(rebasing: flow[j..<k])
      let selfClosing = k > i && flow[k - 1] == 0x2F
      i = k + 1
      if closing { continue }

      if Bytes.equals(name, "flow") {
        if let type = attribute(attributes, "type=\"") {
          if Bytes.equals(type, "new") {
            entry.event = .new
          } else if Bytes.equals(type, "update") {
            entry.event = .update
          } else if Bytes.equals(type, "destroy") {
            entry.event = .destroy
          }
        }
        continue
      }
      if Bytes.equals(name, "meta") {
        let dir = attribute(attributes, "direction=\"")
        if let dir, Bytes.equals(dir, "original") {
          direction = 0
        } else if let dir, Bytes.equals(dir, "reply") {
          direction = 1
        } else {
          direction = -1
        }
        continue
      }
      if Bytes.equals(name, "layer4") {
        if let number = attribute(attributes, "protonum=\"").flatMap(Bytes.decimal),
          let proto = UInt8(exactly: number)
        {
          entry.proto = TransportProtocol(rawValue: proto)
          protoSet = true
        }
        continue
      }
      if selfClosing {
        if Bytes.equals(name, "assured") {
          entry.assured = true
        } else if Bytes.equals(name, "unreplied") {
          entry.unreplied = true
        }
        continue
      }
      // Element text up to the next "<".
      var e = i
      while e < n && flow[e] != 0x3C { e += 1 }
      let text = UnsafeRawBufferPointer(rebasing: flow[i..<e])
      i = e

      func setAddress(_ apply: (inout ConntrackTuple, IPAddress) -> Void) {
        guard let address = IPAddress.parse(text) else {
          problem =
            problem
            ?? InputIssue(
              kind: .malformed, line: line, message: "bad address <\(Bytes.text(name))>\(Bytes.text(text))")
          return
        }
        if direction == 0 {
          apply(&entry.original, address)
        } else if direction == 1 {
          apply(&entry.reply, address)
        }
      }
      func setNumber<T: FixedWidthInteger>(_ type: T.Type, _ apply: (inout ConntrackTuple, T) -> Void) {
        guard let value = Bytes.decimal(text).flatMap({ T(exactly: $0) }) else {
          problem =
            problem
            ?? InputIssue(
              kind: .malformed, line: line, message: "bad number <\(Bytes.text(name))>\(Bytes.text(text))")
          return
        }
        if direction == 0 {
          apply(&entry.original, value)
        } else if direction == 1 {
          apply(&entry.reply, value)
        }
      }

      switch name.count {
      case 3:
        if Bytes.equals(name, "src") {
          setAddress { $0.source = $1 }
        } else if Bytes.equals(name, "dst") {
          setAddress { $0.destination = $1 }
        } else if Bytes.equals(name, "use") {
          entry.use = Bytes.decimal(text).flatMap { UInt32(exactly: $0) }
        } else if direction == -1 && Bytes.equals(name, "id") {
          entry.id = Bytes.decimal(text).flatMap { UInt32(exactly: $0) }
        }
      case 2:
        if Bytes.equals(name, "id") {
          if direction == -1 {
            entry.id = Bytes.decimal(text).flatMap { UInt32(exactly: $0) }
          } else {
            setNumber(UInt16.self) { $0.icmpID = $1 }
          }
        }
      case 4:
        if Bytes.equals(name, "type") {
          setNumber(UInt8.self) { $0.icmpType = $1 }
        } else if Bytes.equals(name, "code") {
          setNumber(UInt8.self) { $0.icmpCode = $1 }
        } else if Bytes.equals(name, "mark") {
          entry.mark = Bytes.decimal(text).flatMap { UInt32(exactly: $0) }
        } else if Bytes.equals(name, "zone") {
          entry.zone = Bytes.decimal(text).flatMap { UInt16(exactly: $0) }
        }
      case 5:
        if Bytes.equals(name, "sport") {
          setNumber(UInt16.self) { $0.sourcePort = $1 }
        } else if Bytes.equals(name, "dport") {
          setNumber(UInt16.self) { $0.destinationPort = $1 }
        } else if Bytes.equals(name, "state") {
          entry.state = ConntrackLineParser.connectionState(text)
        } else if Bytes.equals(name, "bytes") {
          setNumber(UInt64.self) { $0.bytes = $1 }
        }
      case 7:
        if Bytes.equals(name, "timeout") {
          entry.timeout = Bytes.decimal(text).map { UInt32(clamping: $0) }
        } else if Bytes.equals(name, "packets") {
          setNumber(UInt64.self) { $0.packets = $1 }
        }
      default:
        break
      }
    }
    if let problem { return .issue(problem) }
    guard protoSet else {
      return .issue(InputIssue(kind: .malformed, line: line, message: "a <flow> without <layer4 protonum=>"))
    }
    guard entry.original.fiveTuple(entry.proto) != nil, entry.reply.fiveTuple(entry.proto) != nil else {
      return .issue(InputIssue(kind: .malformed, line: line, message: "a <flow> without both tuples"))
    }
    return .entry(entry)
  }

  /// The value of `key"…"` in a tag's attribute text, without the quotes.
  static func attribute(_ attributes: UnsafeRawBufferPointer, _ key: StaticString) -> UnsafeRawBufferPointer?
  {
    let n = key.utf8CodeUnitCount
    guard attributes.count > n, let base = attributes.baseAddress,
      let hit = memmemPointer(base, attributes.count, key.utf8Start, n)
    else { return nil }
    let start = base.distance(to: hit) + n
    var end = start
    while end < attributes.count && attributes[end] != 0x22 { end += 1 }
    return UnsafeRawBufferPointer(rebasing: attributes[start..<end])
  }
}
