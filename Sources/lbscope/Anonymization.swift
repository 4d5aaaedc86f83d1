import LBAnalysis
import LBAnonymize
import LBCore
import LBReport
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// Why `--anonymize` cannot run: no key, or a key too short or unreadable.
struct AnonymizeKeyError: LocatedError {
  var path: String?
  var line: Int? { nil }
  var reason: String
  var hint: String
  var category: FailureCategory
}

/// The secret behind `--anonymize`: a file's bytes or `LBSCOPE_ANONYMIZE_KEY`, trailing
/// whitespace dropped. The same key gives the same pseudonyms in every report.
enum AnonymizeKey {
  static let environmentVariable = "LBSCOPE_ANONYMIZE_KEY"
  static let maximumFileSize = 65_536
  static let howToMake = "make one with `head -c 32 /dev/urandom | base64 > anonymize.key` and keep it secret"

  static func load(file: String?) throws(AnonymizeKeyError) -> [UInt8] {
    var key: [UInt8]
    if let file {
      key = try read(file)
    } else if let value = getenv(environmentVariable), value.pointee != 0 {
      key = Array(String(cString: value).utf8)
    } else {
      throw AnonymizeKeyError(
        path: nil, reason: "--anonymize needs a key",
        hint: "give --anonymize-key-file PATH or set \(environmentVariable); \(howToMake)", category: .usage)
    }
    while let last = key.last, last == 0x0A || last == 0x0D || last == 0x20 || last == 0x09 {
      key.removeLast()
    }
    guard key.count >= TextAnonymizer.minimumKeyLength else {
      throw AnonymizeKeyError(
        path: file,
        reason: "the anonymization key has \(key.count) bytes, fewer than \(TextAnonymizer.minimumKeyLength)",
        hint: howToMake, category: .usage)
    }
    return key
  }

  static func read(_ path: String) throws(AnonymizeKeyError) -> [UInt8] {
    do {
      let fd = try FileDescriptor.open(FilePath(path), .readOnly)
      defer { try? fd.close() }
      var key: [UInt8] = []
      var buffer = [UInt8](repeating: 0, count: 4096)
      while true {
        let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
        if count == 0 { break }
        key += buffer[0..<count]
        if key.count > maximumFileSize {
          throw AnonymizeKeyError(
            path: path, reason: "is larger than \(maximumFileSize) bytes: not a key file", hint: howToMake,
            category: .usage)
        }
      }
      return key
    } catch let error as AnonymizeKeyError {
      throw error
    } catch {
      throw AnonymizeKeyError(
        path: path, reason: "cannot read the anonymization key: \(error)",
        hint: "check the path and its permissions",
        category: .unreadableInput)
    }
  }
}

/// Applies `--anonymize` to a report after rendering, so that no renderer can leak an address.
struct ReportAnonymizer {
  var text: TextAnonymizer
  let hashNames: Bool

  /// `names` are the namespaces, Services, Pods and nodes the report mentions; they are hashed
  /// only with `--anonymize-names`.
  init(key: [UInt8], names: [String], hashNames: Bool) {
    text = TextAnonymizer(key: key, hashNames: hashNames ? names : [])
    self.hashNames = hashNames
  }

  /// Every string of the tree: keys have their addresses replaced (keys are addresses or field
  /// names), values their addresses and names. An `anonymized` member records what was done.
  mutating func apply(_ document: JSON) -> JSON {
    guard case .object(var members) = walk(document) else { return walk(document) }
    members["anonymized"] = .object([
      "addresses": .string("prefix-preserving pseudonyms (Crypto-PAn style, HMAC-SHA-256)"),
      "names": .string(hashNames ? "hashed" : "kept"),
    ])
    return .object(members)
  }

  mutating func walk(_ value: JSON) -> JSON {
    switch value {
    case .null, .bool, .int, .double: return value
    case .string(let s): return .string(text.anonymize(s))
    case .rendered(let bytes):
      // A part rendered ahead (large reports render services in parallel): read it back and
      // walk it like the rest; text lbscope just wrote always parses.
      guard let parsed = try? JSONParser().parse(bytes) else { return .string("(unreadable part)") }
      return walk(parsed)
    case .array(let items): return .array(items.map { walk($0) })
    case .object(let members):
      var out: [String: JSON] = [:]
      for (key, member) in members.sorted(by: { $0.key < $1.key }) {
        out[text.replaceAddresses(in: key)] = walk(member)
      }
      return .object(out)
    }
  }

  mutating func apply(markdown: String) -> String {
    text.anonymize(markdown)
      + "\n_Anonymized: addresses are keyed prefix-preserving pseudonyms; names are \(hashNames ? "keyed hashes" : "kept")._\n"
  }

  /// The names an analysis mentions: Service names, Pod names.
  static func names(in result: AnalysisResult) -> [String] {
    var names: [String] = []
    for service in result.services {
      if let name = service.name { names.append(name) }
      names += service.backends.compactMap(\.pod)
    }
    return names
  }
}
