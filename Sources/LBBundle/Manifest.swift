import LBCore
import LBReport

/// What `manifest.json` says about one file of a bundle (or one thing that could not be
/// collected): how it was made, how it went, what kind of input it is.
public struct ManifestItem: Sendable, Equatable {
  /// Path inside the bundle, `nil` when nothing was written.
  public var file: String?
  /// Input kind as the report contract names it (`conntrack`, `iptables-save`, …), or a
  /// context kind lbscope does not analyse (`jiffies`, `conntrack-stats`, `versions`, `links`).
  public var kind: String
  /// The command run (fixed argument vector), if a command made the file.
  public var argv: [String]?
  /// The kernel file or interface read, if no command was run (`/proc/…`, `netlink`).
  public var source: String?
  public var exitStatus: Int32?
  public var signal: Int32?
  public var timedOut: Bool
  public var durationSeconds: Double?
  public var bytes: Int?
  /// Why the item is missing or incomplete, in one line.
  public var error: String?

  public init(
    file: String?, kind: String, argv: [String]? = nil, source: String? = nil, exitStatus: Int32? = nil,
    signal: Int32? = nil, timedOut: Bool = false, durationSeconds: Double? = nil, bytes: Int? = nil,
    error: String? = nil
  ) {
    self.file = file
    self.kind = kind
    self.argv = argv
    self.source = source
    self.exitStatus = exitStatus
    self.signal = signal
    self.timedOut = timedOut
    self.durationSeconds = durationSeconds
    self.bytes = bytes
    self.error = error
  }

  var json: JSON {
    .object([
      "file": .optional(file), "kind": .string(kind),
      "argv": argv.map { .array($0.map(JSON.string)) } ?? .null,
      "source": .optional(source), "exitStatus": .optional(exitStatus), "signal": .optional(signal),
      "timedOut": .bool(timedOut), "durationSeconds": .optional(durationSeconds), "bytes": .optional(bytes),
      "error": .optional(error),
    ])
  }

  init?(json: JSON) {
    guard case .object(let o) = json, case .string(let kind)? = o["kind"] else { return nil }
    func string(_ key: String) -> String? { if case .string(let s)? = o[key] { s } else { nil } }
    func int(_ key: String) -> Int64? { if case .int(let i)? = o[key] { i } else { nil } }
    self.kind = kind
    file = string("file")
    if case .array(let items)? = o["argv"] {
      argv = items.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }
    source = string("source")
    exitStatus = int("exitStatus").map { Int32(clamping: $0) }
    signal = int("signal").map { Int32(clamping: $0) }
    if case .bool(let b)? = o["timedOut"] { timedOut = b } else { timedOut = false }
    switch o["durationSeconds"] {
    case .double(let d)?: durationSeconds = d
    case .int(let i)?: durationSeconds = Double(i)
    default: durationSeconds = nil
    }
    bytes = int("bytes").map { Int(clamping: $0) }
    error = string("error")
  }
}

/// `manifest.json`: the bundle's table of contents, written last by `lbscope collect`.
public struct BundleManifest: Sendable, Equatable {
  public static let fileName = "manifest.json"
  public static let schemaVersion = 1
  public var toolVersion: String
  /// Seconds since the epoch when collection began.
  public var createdAt: Int
  public var items: [ManifestItem]

  public init(toolVersion: String, createdAt: Int, items: [ManifestItem] = []) {
    self.toolVersion = toolVersion
    self.createdAt = createdAt
    self.items = items
  }

  /// The manifest's JSON text; items in collection order.
  public func rendered() -> String {
    JSON.object([
      "schemaVersion": .int(Int64(Self.schemaVersion)),
      "tool": .object(["name": .string("lbscope"), "version": .string(toolVersion)]),
      "createdAt": .int(Int64(createdAt)),
      "items": .array(items.map(\.json)),
    ]).rendered()
  }

  /// Parses a manifest; `nil` when it is not one.
  public static func parse(_ bytes: [UInt8]) -> BundleManifest? {
    guard case .object(let o)? = try? JSONParser().parse(bytes), case .array(let items)? = o["items"] else {
      return nil
    }
    var version = ""
    if case .object(let tool)? = o["tool"], case .string(let v)? = tool["version"] { version = v }
    var created = 0
    if case .int(let c)? = o["createdAt"] { created = Int(clamping: c) }
    return BundleManifest(
      toolVersion: version, createdAt: created, items: items.compactMap(ManifestItem.init(json:)))
  }
}
