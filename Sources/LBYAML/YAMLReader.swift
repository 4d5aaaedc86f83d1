import LBCore
import LBReport
import Yams

/// Why a YAML text cannot be read: where (line, column) and what libyaml or the reader said.
public struct YAMLParseError: LocatedError, Equatable {
  public var path: String?
  public var line: Int?
  /// 1-based column of the problem, when libyaml gave one.
  public var column: Int?
  public var problem: String
  public var hint: String
  public var category: FailureCategory { .unrecognizedInput }
  public var reason: String {
    "not valid YAML\(column.map { " at column \($0)" } ?? ""): \(problem)"
  }

  public init(path: String?, line: Int?, column: Int? = nil, problem: String, hint: String = "") {
    self.path = path
    self.line = line
    self.column = column
    self.problem = problem
    self.hint = hint
  }
}

/// Reads one YAML document (as `kubectl get … -o yaml` writes it) into LBReport's `JSON` value,
/// so the readers written for `-o json` read it unchanged.
///
/// Scalars follow the YAML 1.2 core schema on plain (unquoted) scalars only: `null`, `~` and the
/// empty scalar are null, `true`/`false` are booleans, decimal integers that fit `Int64` are
/// integers, other numbers are doubles; everything quoted or in a block scalar is a string.
/// kubectl (go-yaml) quotes any string that would read otherwise.
///
/// Bounded like `JSONParser`: texts over `maximumSize` bytes, nesting deeper than `maximumDepth`
/// and aliases (`*name`) are refused. kubectl never writes anchors or aliases, and one alias can
/// stand for a tree exponentially larger than the text (the "billion laughs"), which Yams would
/// expand and hash as a mapping key before this reader saw it; a conversion budget of nodes
/// proportional to the text's size stops any expansion the alias scan does not see.
public struct YAMLReader: Sendable {
  public var maximumDepth = 64
  public var maximumSize = 512 << 20
  /// The hint every error carries (what to give instead).
  public var hint = ""

  public init(hint: String = "") { self.hint = hint }

  /// Parses a whole text. `path` only labels errors.
  public func parse(_ bytes: [UInt8], path: String? = nil) throws(YAMLParseError) -> JSON {
    guard bytes.count <= maximumSize else {
      throw failure(path, nil, nil, "larger than \(maximumSize) bytes")
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
      let offset = Self.firstInvalidUTF8(bytes)
      throw failure(path, Self.line(at: offset, in: bytes), nil, "invalid UTF-8 at byte \(offset)")
    }
    if let line = YAMLAliasScan.firstAliasLine(bytes) {
      throw failure(
        path, line, nil,
        "an alias (*name) is not read: kubectl never writes anchors or aliases, and an alias can stand for an unbounded tree"
      )
    }
    let root: Node?
    do {
      root = try Yams.compose(yaml: text, .basic, .default)
    } catch let error as YamlError {
      throw translate(error, path: path, bytes: bytes)
    } catch {
      throw failure(path, nil, nil, "\(error)")
    }
    guard let root else { throw failure(path, 1, nil, "no document (the text is empty)") }
    var budget = 2 * bytes.count + 64
    return try convert(root, depth: 0, budget: &budget, path: path)
  }

  func failure(_ path: String?, _ line: Int?, _ column: Int?, _ problem: String) -> YAMLParseError {
    YAMLParseError(path: path, line: line, column: column, problem: problem, hint: hint)
  }

  func convert(_ node: Node, depth: Int, budget: inout Int, path: String?) throws(YAMLParseError) -> JSON {
    budget -= 1
    guard budget >= 0 else {
      throw failure(path, node.mark?.line, nil, "expands to more nodes than the text could hold (aliases)")
    }
    switch node {
    case .scalar(let scalar):
      return Self.value(of: scalar)
    case .sequence(let sequence):
      guard depth < maximumDepth else {
        throw failure(path, sequence.mark?.line, nil, "nested deeper than \(maximumDepth) levels")
      }
      var items: [JSON] = []
      items.reserveCapacity(sequence.count)
      for item in sequence {
        items.append(try convert(item, depth: depth + 1, budget: &budget, path: path))
      }
      return .array(items)
    case .mapping(let mapping):
      guard depth < maximumDepth else {
        throw failure(path, mapping.mark?.line, nil, "nested deeper than \(maximumDepth) levels")
      }
      var object: [String: JSON] = [:]
      object.reserveCapacity(mapping.count)
      for (key, value) in mapping {
        guard case .scalar(let k) = key else {
          throw failure(path, key.mark?.line, nil, "a mapping key that is not a scalar")
        }
        object[k.string] = try convert(value, depth: depth + 1, budget: &budget, path: path)
      }
      return .object(object)
    case .alias(let alias):
      // Yams resolves aliases while composing; an unresolved one is refused like the rest.
      throw failure(path, alias.mark?.line, nil, "an alias (*name) is not read")
    }
  }

  /// The core schema's reading of a scalar: only plain scalars are anything but strings.
  static func value(of scalar: Node.Scalar) -> JSON {
    let s = scalar.string
    guard scalar.style == .plain else { return .string(s) }
    switch s {
    case "", "~", "null", "Null", "NULL": return .null
    case "true", "True", "TRUE": return .bool(true)
    case "false", "False", "FALSE": return .bool(false)
    default: break
    }
    if let int = Int64(s) { return .int(int) }
    if isDecimalNumber(s), let double = Double(s), double.isFinite { return .double(double) }
    return .string(s)
  }

  /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`: the core schema's float, without
  /// the `.inf`/`.nan` forms JSON cannot hold (those stay strings).
  static func isDecimalNumber(_ s: String) -> Bool {
    var bytes = Substring(s).utf8[...]
    if let first = bytes.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") {
      bytes = bytes.dropFirst()
    }
    let digits = bytes.prefix { $0 >= 0x30 && $0 <= 0x39 }
    bytes = bytes.dropFirst(digits.count)
    var fraction = 0
    if bytes.first == UInt8(ascii: ".") {
      bytes = bytes.dropFirst()
      fraction = bytes.prefix { $0 >= 0x30 && $0 <= 0x39 }.count
      bytes = bytes.dropFirst(fraction)
    }
    guard digits.count + fraction > 0 else { return false }
    if let e = bytes.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
      bytes = bytes.dropFirst()
      if let sign = bytes.first, sign == UInt8(ascii: "-") || sign == UInt8(ascii: "+") {
        bytes = bytes.dropFirst()
      }
      let exponent = bytes.prefix { $0 >= 0x30 && $0 <= 0x39 }.count
      guard exponent > 0 else { return false }
      bytes = bytes.dropFirst(exponent)
    }
    return bytes.isEmpty
  }

  /// libyaml's error (its problem, context and position) as one line; never the text itself,
  /// which Yams' own description would repeat in full.
  func translate(_ error: YamlError, path: String?, bytes: [UInt8]) -> YAMLParseError {
    switch error {
    case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
      .composer(let context, let problem, let mark, _):
      let text = context.map { "\(problem) \($0.text) (started on line \($0.mark.line))" } ?? problem
      return failure(path, mark.line, mark.column, text)
    case .reader(let problem, let offset, _, _):
      return failure(path, offset.map { Self.line(at: $0, in: bytes) }, nil, problem)
    case .duplicatedKeysInMapping(let duplicates, let context):
      return failure(
        path, context.mark.line, nil,
        "duplicate key \(duplicates.prefix(3).joined(separator: ", ")) in a mapping")
    case .memory:
      return failure(path, nil, nil, "libyaml ran out of memory")
    default:
      return failure(path, nil, nil, "cannot be composed")
    }
  }

  /// 1-based line of a byte offset.
  static func line(at offset: Int, in bytes: [UInt8]) -> Int {
    1 + bytes.prefix(max(0, min(offset, bytes.count))).reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
  }

  /// The offset of the first byte that is not part of valid UTF-8.
  static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int {
    var parser = Unicode.UTF8.ForwardParser()
    var iterator = bytes.makeIterator()
    var offset = 0
    while true {
      switch parser.parseScalar(from: &iterator) {
      case .valid(let encoded): offset += encoded.count
      case .emptyInput: return offset
      case .error: return offset
      }
    }
  }
}
