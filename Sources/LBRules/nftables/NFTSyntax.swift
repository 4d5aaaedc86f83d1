/// nft's text syntax as `nft list ruleset` prints it and `nft -f` reads it, cut into tokens.
///
/// Tokens are words separated by blanks; a double-quoted string is one token (quotes kept);
/// `{`, `}`, `,` and `;` are tokens of their own even when glued to a word (`{ 10.0.0.1,`);
/// `#` outside quotes starts a comment (`# handle 12` of `nft -a`). `.` and `:` are kept inside
/// words (addresses, `10.0.0.1:80`) and are tokens only where nft spaces them (`a . b : c`).
enum NFTSyntax {
  static func tokenize(_ line: Substring) -> [Substring] {
    var tokens: [Substring] = []
    var i = line.startIndex
    while i < line.endIndex {
      let c = line[i]
      if c == " " || c == "\t" {
        i = line.index(after: i)
        continue
      }
      if c == "#" { break }
      if c == "\"" {
        var j = line.index(after: i)
        while j < line.endIndex && line[j] != "\"" { j = line.index(after: j) }
        let end = j < line.endIndex ? line.index(after: j) : j
        tokens.append(line[i..<end])
        i = end
        continue
      }
      if c == "{" || c == "}" || c == "," || c == ";" {
        tokens.append(line[i...i])
        i = line.index(after: i)
        continue
      }
      var j = i
      while j < line.endIndex {
        let d = line[j]
        if d == " " || d == "\t" || d == "{" || d == "}" || d == "," || d == ";" || d == "\"" { break }
        j = line.index(after: j)
      }
      tokens.append(line[i..<j])
      i = j
    }
    return tokens
  }

  /// `{` minus `}` among the tokens.
  static func braceBalance(_ tokens: [Substring]) -> Int {
    var depth = 0
    for t in tokens {
      if t == "{" { depth += 1 } else if t == "}" { depth -= 1 }
    }
    return depth
  }

  /// A quoted token without its quotes; other tokens as they are.
  static func unquote(_ token: Substring) -> String {
    if token.count >= 2, token.first == "\"", token.last == "\"" {
      return String(token.dropFirst().dropLast())
    }
    if token.first == "\"" { return String(token.dropFirst()) }
    return String(token)
  }

  /// nft's time values: `10800s`, `3h`, `2h59m12s460ms`, `1d2h`, or a bare number of seconds.
  /// Returns seconds; `nil` for anything else.
  static func duration(_ text: Substring) -> Double? {
    if text.isEmpty { return nil }
    if let plain = Int(text) { return Double(plain) }
    var total = 0.0
    var number = 0.0
    var digits = 0
    var i = text.startIndex
    var units = 0
    while i < text.endIndex {
      let c = text[i]
      if let v = c.wholeNumberValue, c.isASCII {
        number = number * 10 + Double(v)
        digits += 1
        if digits > 15 { return nil }
        i = text.index(after: i)
        continue
      }
      guard digits > 0 else { return nil }
      let next = text.index(after: i)
      let scale: Double
      switch c {
      case "d": scale = 86_400
      case "h": scale = 3_600
      case "m":
        if next < text.endIndex && text[next] == "s" {
          scale = 0.001
          i = next
        } else {
          scale = 60
        }
      case "s": scale = 1
      default: return nil
      }
      total += number * scale
      number = 0
      digits = 0
      units += 1
      i = text.index(after: i)
    }
    if digits > 0 || units == 0 { return nil }
    return total
  }

  /// Splits tokens at top-level commas (commas inside nested braces stay).
  static func splitTopLevel(_ tokens: ArraySlice<Substring>) -> [ArraySlice<Substring>] {
    var parts: [ArraySlice<Substring>] = []
    var depth = 0
    var start = tokens.startIndex
    for i in tokens.indices {
      let t = tokens[i]
      if t == "{" {
        depth += 1
      } else if t == "}" {
        depth -= 1
      } else if t == "," && depth == 0 {
        parts.append(tokens[start..<i])
        start = i + 1
      }
    }
    parts.append(tokens[start..<tokens.endIndex])
    return parts.filter { !$0.isEmpty }
  }

  /// The tokens between the first `{` at or after `from` and its matching `}`, and the index
  /// after the `}`; `nil` when no balanced block follows.
  static func block(_ tokens: [Substring], from: Int) -> (body: ArraySlice<Substring>, next: Int)? {
    guard let open = tokens[from...].firstIndex(of: "{") else { return nil }
    var depth = 0
    for i in open..<tokens.count {
      if tokens[i] == "{" {
        depth += 1
      } else if tokens[i] == "}" {
        depth -= 1
        if depth == 0 { return (tokens[(open + 1)..<i], i + 1) }
      }
    }
    return nil
  }

  /// nft address families.
  static let families: Set<Substring> = ["ip", "ip6", "inet", "arp", "bridge", "netdev"]
}
