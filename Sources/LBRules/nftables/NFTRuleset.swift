import LBCore

/// One nft rule as text tokens, with the line it came from.
struct NFTRule {
  var tokens: [Substring]
  var line: Int
}

/// One element of a set or map: its key (`10.0.0.1 . tcp . 80`), its value after ` : `
/// (`goto service-…`, `drop`, `10.1.0.5 . 8080`), and the attributes nft prints with it.
struct NFTElement {
  var key: [Substring]
  var value: [Substring]
  var comment: String?
  var timeoutSeconds: Double?
  var expiresSeconds: Double?
  var line: Int

  /// The key's parts split at ` . ` (`["10.0.0.1", "tcp", "80"]`).
  var keyParts: [Substring] {
    key.split(separator: ".", omittingEmptySubsequences: true).map { $0.first ?? "" }
  }

  /// `goto X` / `jump X` target of a verdict value.
  var verdictTarget: Substring? {
    guard value.count >= 2, value[0] == "goto" || value[0] == "jump" else { return nil }
    return value[1]
  }
}

/// A named set or map.
struct NFTSet {
  var name: Substring
  var isMap: Bool
  var type: [Substring] = []
  var flags: [Substring] = []
  var timeoutSeconds: Double?
  var comment: String?
  var elements: [NFTElement] = []
  var line: Int
}

/// A chain with its rules in order.
struct NFTChain {
  var name: Substring
  var rules: [NFTRule] = []
  var hook: Substring?
  var line: Int
}

/// One table: its chains, sets and maps.
struct NFTTable {
  var family: Substring
  var name: Substring
  var chains: [Substring: NFTChain] = [:]
  var chainOrder: [Substring] = []
  var sets: [Substring: NFTSet] = [:]
  var line: Int
  /// A listing fragment that starts inside a table (`chain X {` at the top level).
  var implicit: Bool = false

  mutating func ensureChain(_ name: Substring, line: Int) {
    if chains[name] == nil {
      chains[name] = NFTChain(name: name, line: line)
      chainOrder.append(name)
    }
  }

  mutating func ensureSet(_ name: Substring, isMap: Bool, line: Int) {
    if sets[name] == nil { sets[name] = NFTSet(name: name, isMap: isMap, line: line) }
  }
}

/// Everything an nft listing or transaction file declares, table by table, before any
/// kube-proxy meaning is given to it.
///
/// Reads both shapes into the same tables: the nested block form of `nft list ruleset` /
/// `nft -a list table ip kube-proxy` (handles and counters allowed) and the command form of an
/// `nft -f` transaction (`add table|chain|rule|set|map|element …`, `flush`, `delete`), which is
/// what kube-proxy itself writes. Memory grows with the rules, not with the file.
struct NFTRulesetParser {
  private(set) var tables: [NFTTable] = []
  private var tableIndex: [String: Int] = [:]
  var summary: InputSummary

  private enum Block {
    case table(Int)
    case chain(Int, Substring)
    case set(Int, Substring)
    case other
  }
  private var stack: [Block] = []
  private var pending: [Substring] = []
  private var pendingLine = 0
  private var pendingDepth = 0
  /// Statements seen that are nft but say nothing about services (hooks, policies).
  private(set) var statements = 0

  init(summary: InputSummary) { self.summary = summary }

  private static let blockKeywords: Set<Substring> = [
    "table", "chain", "set", "map", "flowtable", "counter", "quota", "limit", "ct", "secmark",
    "synproxy",
  ]
  private static let commandVerbs: Set<Substring> = [
    "add", "create", "insert", "replace", "flush", "delete", "destroy",
  ]

  mutating func feed(_ line: Substring, number: Int, overlong: Bool) {
    if overlong {
      summary.records += 1
      summary.record(
        InputIssue(
          kind: .malformed, line: number, message: "line longer than \(DatapathTextFile.maxLineLength) bytes")
      )
      return
    }
    let tokens = NFTSyntax.tokenize(line)
    if pendingDepth > 0 {
      pending.append(contentsOf: tokens)
      pendingDepth += NFTSyntax.braceBalance(tokens)
      if pendingDepth <= 0 {
        let statement = pending
        pending = []
        pendingDepth = 0
        self.statement(statement, line: pendingLine)
      }
      return
    }
    guard let first = tokens.first else { return }
    summary.records += 1
    if first == "}" {
      if stack.popLast() == nil {
        summary.record(InputIssue(kind: .malformed, line: number, message: "`}` without an open block"))
      }
      return
    }
    let balance = NFTSyntax.braceBalance(tokens)
    if balance == 1, tokens.last == "{", Self.blockKeywords.contains(first) {
      open(tokens, line: number)
      return
    }
    if balance > 0 {
      pending = tokens
      pendingLine = number
      pendingDepth = balance
      return
    }
    statement(tokens, line: number)
  }

  /// Ends the input: blocks or statements still open mean it was cut.
  mutating func finish() {
    if pendingDepth > 0 {
      summary.record(
        InputIssue(kind: .truncated, line: pendingLine, message: "statement not closed at end of input"))
      summary.partial = true
      var statement = pending
      for _ in 0..<pendingDepth { statement.append("}") }
      pending = []
      pendingDepth = 0
      self.statement(statement, line: pendingLine)
    }
    if !stack.isEmpty {
      summary.record(
        InputIssue(
          kind: .truncated, line: 0, message: "\(stack.count) block(s) not closed at end of input"))
      summary.partial = true
      stack.removeAll()
    }
  }

  // MARK: - Block form

  private mutating func open(_ tokens: [Substring], line: Int) {
    let words = tokens.dropLast()  // without "{"
    switch tokens[0] {
    case "table":
      let names = Array(words.dropFirst())
      let family: Substring = names.count >= 2 ? names[0] : "ip"
      guard let name = names.last, names.count <= 2 else {
        summary.record(InputIssue(kind: .malformed, line: line, message: "table without a name"))
        stack.append(.other)
        return
      }
      stack.append(.table(table(family: family, name: name, line: line)))
    case "chain", "set", "map":
      guard words.count >= 2 else {
        summary.record(InputIssue(kind: .malformed, line: line, message: "\(tokens[0]) without a name"))
        stack.append(.other)
        return
      }
      let name = words[words.startIndex + 1]
      let t = currentTable(line: line)
      if tokens[0] == "chain" {
        tables[t].ensureChain(name, line: line)
        stack.append(.chain(t, name))
      } else {
        tables[t].ensureSet(name, isMap: tokens[0] == "map", line: line)
        stack.append(.set(t, name))
      }
    default:
      stack.append(.other)
    }
  }

  /// The table the block stack is in, or an implicit one for a fragment that starts inside a table.
  private mutating func currentTable(line: Int) -> Int {
    for block in stack.reversed() {
      if case .table(let t) = block { return t }
    }
    let t = table(family: "ip", name: "", line: line)
    tables[t].implicit = true
    return t
  }

  private mutating func table(family: Substring, name: Substring, line: Int) -> Int {
    let key = "\(family) \(name)"
    if let t = tableIndex[key] { return t }
    tables.append(NFTTable(family: family, name: name, line: line))
    tableIndex[key] = tables.count - 1
    return tables.count - 1
  }

  private mutating func statement(_ tokens: [Substring], line: Int) {
    switch stack.last {
    case nil:
      command(tokens, line: line)
    case .table:
      if tokens[0] == "comment" || tokens[0] == "flags" { return }
      summary.record(
        InputIssue(
          kind: .unsupported, line: line,
          message: "not an nft table statement: \(tokens.prefix(4).joined(separator: " "))"))
    case .chain(let t, let name):
      chainStatement(tokens, table: t, chain: name, line: line, append: true)
    case .set(let t, let name):
      setAttribute(tokens[...], table: t, set: name, line: line)
    case .other:
      statements += 1
    }
  }

  private mutating func chainStatement(
    _ tokens: [Substring], table t: Int, chain: Substring, line: Int, append: Bool
  ) {
    let first = tokens[0]
    if first == "type", let hook = tokens.firstIndex(of: "hook"), hook + 1 < tokens.count {
      tables[t].chains[chain]?.hook = tokens[hook + 1]
      return
    }
    if first == "policy" || first == "devices" || (first == "comment" && tokens.count <= 2) {
      return
    }
    let rule = NFTRule(tokens: tokens, line: line)
    if append {
      tables[t].chains[chain]?.rules.append(rule)
    } else {
      tables[t].chains[chain]?.rules.insert(rule, at: 0)
    }
  }

  private mutating func setAttribute(_ tokens: ArraySlice<Substring>, table t: Int, set: Substring, line: Int)
  {
    guard let first = tokens.first else { return }
    let rest = tokens.dropFirst()
    switch first {
    case "type", "typeof":
      tables[t].sets[set]?.type = Array(rest)
    case "flags":
      tables[t].sets[set]?.flags = rest.filter { $0 != "," }
    case "timeout":
      if let value = rest.first, let seconds = NFTSyntax.duration(value) {
        tables[t].sets[set]?.timeoutSeconds = seconds
      } else {
        summary.record(InputIssue(kind: .malformed, line: line, message: "set timeout is not a duration"))
      }
    case "comment":
      if let value = rest.first { tables[t].sets[set]?.comment = NFTSyntax.unquote(value) }
    case "elements":
      if let (body, _) = NFTSyntax.block(Array(tokens), from: 0) {
        addElements(body, table: t, set: set, line: line)
      }
    case "size", "gc-interval", "policy", "counter", "auto-merge":
      return
    default:
      summary.record(
        InputIssue(
          kind: .unsupported, line: line,
          message: "not an nft set statement: \(tokens.prefix(4).joined(separator: " "))"))
    }
  }

  private mutating func addElements(_ body: ArraySlice<Substring>, table t: Int, set: Substring, line: Int) {
    for part in NFTSyntax.splitTopLevel(body) {
      var element = NFTElement(key: [], value: [], line: line)
      var i = part.startIndex
      while i < part.endIndex {
        let token = part[i]
        switch token {
        case "timeout", "expires":
          if i + 1 < part.endIndex, let seconds = NFTSyntax.duration(part[i + 1]) {
            if token == "timeout" {
              element.timeoutSeconds = seconds
            } else {
              element.expiresSeconds = seconds
            }
          } else {
            summary.record(
              InputIssue(kind: .malformed, line: line, message: "element \(token) is not a duration"))
          }
          i += 2
        case "comment":
          if i + 1 < part.endIndex { element.comment = NFTSyntax.unquote(part[i + 1]) }
          i += 2
        case "counter":
          i += 1
          while i < part.endIndex, part[i] == "packets" || part[i] == "bytes" { i += 2 }
        case ":":
          element.value = Array(part[(i + 1)...])
          i = part.endIndex
        default:
          element.key.append(token)
          i += 1
        }
      }
      if element.key.isEmpty {
        summary.record(InputIssue(kind: .malformed, line: line, message: "set element without a key"))
        continue
      }
      tables[t].sets[set]?.elements.append(element)
    }
  }

  // MARK: - Transaction (command) form

  private mutating func command(_ tokens: [Substring], line: Int) {
    guard Self.commandVerbs.contains(tokens[0]), tokens.count >= 2 else {
      summary.record(
        InputIssue(
          kind: .unsupported, line: line,
          message: "not an nft statement: \(tokens.prefix(4).joined(separator: " "))"))
      return
    }
    let verb = tokens[0]
    let kind = tokens[1]
    if kind == "ruleset" {
      if verb == "flush" {
        tables.removeAll()
        tableIndex.removeAll()
      }
      return
    }
    var i = 2
    var family: Substring = "ip"
    if i < tokens.count, NFTSyntax.families.contains(tokens[i]), i + 1 < tokens.count,
      tokens[i + 1] != "{"
    {
      family = tokens[i]
      i += 1
    }
    guard i < tokens.count else {
      summary.record(InputIssue(kind: .malformed, line: line, message: "\(verb) \(kind) without a table"))
      return
    }
    let tableName = tokens[i]
    i += 1
    let isRemoval = verb == "delete" || verb == "destroy" || verb == "flush"
    if kind == "table" {
      if verb == "delete" || verb == "destroy" {
        if let t = tableIndex.removeValue(forKey: "\(family) \(tableName)") {
          tables[t].chains.removeAll()
          tables[t].chainOrder.removeAll()
          tables[t].sets.removeAll()
        }
      } else if verb == "flush" {
        if let t = tableIndex["\(family) \(tableName)"] {
          for name in tables[t].chainOrder { tables[t].chains[name]?.rules.removeAll() }
        }
      } else {
        _ = table(family: family, name: tableName, line: line)
      }
      return
    }
    guard i < tokens.count else {
      summary.record(InputIssue(kind: .malformed, line: line, message: "\(verb) \(kind) without a name"))
      return
    }
    let name = tokens[i]
    i += 1
    if isRemoval && tableIndex["\(family) \(tableName)"] == nil { return }
    let t = table(family: family, name: tableName, line: line)
    switch kind {
    case "chain":
      if verb == "delete" || verb == "destroy" {
        tables[t].chains[name] = nil
        tables[t].chainOrder.removeAll { $0 == name }
      } else if verb == "flush" {
        tables[t].chains[name]?.rules.removeAll()
      } else {
        tables[t].ensureChain(name, line: line)
        if let (body, _) = NFTSyntax.block(tokens, from: i) {
          for statement in body.split(separator: ";") where !statement.isEmpty {
            chainStatement(Array(statement), table: t, chain: name, line: line, append: true)
          }
        }
      }
    case "rule":
      if isRemoval { return }
      tables[t].ensureChain(name, line: line)
      while i + 1 < tokens.count, tokens[i] == "position" || tokens[i] == "index" || tokens[i] == "handle" {
        i += 2
      }
      guard i < tokens.count else {
        summary.record(InputIssue(kind: .malformed, line: line, message: "rule without statements"))
        return
      }
      chainStatement(Array(tokens[i...]), table: t, chain: name, line: line, append: verb != "insert")
    case "set", "map":
      if verb == "delete" || verb == "destroy" {
        tables[t].sets[name] = nil
      } else if verb == "flush" {
        tables[t].sets[name]?.elements.removeAll()
      } else {
        tables[t].ensureSet(name, isMap: kind == "map", line: line)
        if let (body, _) = NFTSyntax.block(tokens, from: i) {
          for statement in body.split(separator: ";") where !statement.isEmpty {
            setAttribute(statement, table: t, set: name, line: line)
          }
        }
      }
    case "element":
      guard let (body, _) = NFTSyntax.block(tokens, from: i) else {
        summary.record(InputIssue(kind: .malformed, line: line, message: "element command without `{ … }`"))
        return
      }
      if verb == "delete" || verb == "destroy" {
        let keys = Set(
          NFTSyntax.splitTopLevel(body).map { part in
            part.prefix { $0 != ":" && $0 != "comment" && $0 != "timeout" }.joined(separator: " ")
          })
        tables[t].sets[name]?.elements.removeAll { keys.contains($0.key.joined(separator: " ")) }
      } else if !isRemoval {
        tables[t].ensureSet(name, isMap: false, line: line)
        addElements(body, table: t, set: name, line: line)
      }
    default:
      statements += 1
    }
  }
}
