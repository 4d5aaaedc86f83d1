/// Finds a YAML alias (`*name` where a node may start) without parsing, so a text that uses one
/// is refused before Yams composes it (Yams expands aliases and hashes mapping keys deeply, so a
/// few nested anchors used as a key would take exponential time).
///
/// A lexical approximation of YAML 1.2's rules, erring towards finding nothing: quoted scalars
/// (also across lines), comments and block scalars (`|`, `>`) are skipped; a `*` counts only where
/// a node starts: after indentation, `- `, `? `, `: `, and after `[`, `{` or `,` inside a flow
/// collection. An alias it misses is still bounded by `YAMLReader`'s conversion budget.
enum YAMLAliasScan {
  /// The 1-based line of the first alias, or nil.
  static func firstAliasLine(_ bytes: [UInt8]) -> Int? {
    // Cheap exit: kubectl's output has no `*` at all in the usual case.
    guard bytes.contains(UInt8(ascii: "*")) else { return nil }
    var scanner = Scanner()
    var line = 1
    var start = 0
    for i in 0...bytes.count where i == bytes.count || bytes[i] == 0x0A {
      if scanner.aliasInLine(bytes[start..<i]) { return line }
      line += 1
      start = i + 1
    }
    return nil
  }

  struct Scanner {
    enum Quote { case none, single, double }
    var quote = Quote.none
    /// Indentation of the line that opened a block scalar, while inside one.
    var blockIndent: Int?
    var flowDepth = 0

    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")

    mutating func aliasInLine(_ line: ArraySlice<UInt8>) -> Bool {
      let indent = line.prefix { $0 == Self.space }.count
      let blank = line.allSatisfy { $0 == Self.space || $0 == Self.tab || $0 == 0x0D }
      if let block = blockIndent {
        if blank || indent > block { return false }
        blockIndent = nil
      }
      var i = line.startIndex
      // A node may start here unless the line continues a quoted scalar.
      var nodeStart = quote == .none
      while i < line.endIndex {
        let c = line[i]
        let next: UInt8? = i + 1 < line.endIndex ? line[i + 1] : nil
        switch quote {
        case .double:
          if c == UInt8(ascii: "\\") {
            i += 2
            continue
          }
          if c == UInt8(ascii: "\"") { quote = .none }
          i += 1
          continue
        case .single:
          if c == UInt8(ascii: "'") {
            if next == UInt8(ascii: "'") {
              i += 2
              continue
            }
            quote = .none
          }
          i += 1
          continue
        case .none:
          break
        }
        if c == Self.space || c == Self.tab || c == 0x0D {
          i += 1
          continue
        }
        // A comment starts at a `#` after white space or at the start of the line.
        if c == UInt8(ascii: "#"), i == line.startIndex || [Self.space, Self.tab].contains(line[i - 1]) {
          return false
        }
        let separated = next == nil || next == Self.space || next == Self.tab
        if nodeStart {
          switch c {
          case UInt8(ascii: "*"):
            if !separated { return true }
          case UInt8(ascii: "\""):
            quote = .double
            nodeStart = false
          case UInt8(ascii: "'"):
            quote = .single
            nodeStart = false
          case UInt8(ascii: "|"), UInt8(ascii: ">"):
            if flowDepth == 0 {
              blockIndent = indent
              return false
            }
            nodeStart = false
          case UInt8(ascii: "-") where separated, UInt8(ascii: "?") where separated,
            UInt8(ascii: ":") where separated:
            break  // a sequence entry or key indicator: the node follows
          case UInt8(ascii: "&"), UInt8(ascii: "!"):
            // An anchor or tag: a property before the node; skip the token.
            while i < line.endIndex && line[i] != Self.space && line[i] != Self.tab { i += 1 }
            continue
          case UInt8(ascii: "["), UInt8(ascii: "{"):
            flowDepth += 1
          case UInt8(ascii: ","):
            break
          case UInt8(ascii: "]"), UInt8(ascii: "}"):
            flowDepth = max(0, flowDepth - 1)
            nodeStart = false
          default:
            nodeStart = false
          }
          i += 1
          continue
        }
        switch c {
        case UInt8(ascii: ":") where separated || flowDepth > 0:
          nodeStart = true
        case UInt8(ascii: ",") where flowDepth > 0:
          nodeStart = true
        case UInt8(ascii: "[") where flowDepth > 0, UInt8(ascii: "{") where flowDepth > 0:
          flowDepth += 1
          nodeStart = true
        case UInt8(ascii: "]") where flowDepth > 0, UInt8(ascii: "}") where flowDepth > 0:
          flowDepth -= 1
        default:
          break
        }
        i += 1
      }
      return false
    }
  }
}
