import LBConntrack
import LBCore
import SystemPackage

/// Opens a text dump (or standard input for `-`) and hands out its lines as `Substring`s with
/// their 1-based numbers, through `LineReader`, so a dump is never held whole in memory.
///
/// Shared by the nftables and IPVS readers; both turn file-level failures into
/// `RulesReaderError` and count per-line damage themselves.
enum DatapathTextFile {
  /// Longest line handed over whole. nft prints a whole `numgen … vmap { … }` with every endpoint
  /// on one line: 1,000 endpoints make about 100 KiB, so the cap is generous.
  static let maxLineLength = 1 << 20

  /// Calls `body(line, number, overlong)` for every line. Throws `RulesReaderError` when the
  /// path cannot be opened or read.
  static func forEachLine(
    path: String, _ body: (_ line: Substring, _ number: Int, _ overlong: Bool) -> Void
  ) throws(RulesReaderError) {
    let descriptor: FileDescriptor
    var ownsDescriptor = false
    if path == "-" {
      descriptor = .standardInput
    } else {
      do {
        descriptor = try FileDescriptor.open(FilePath(path), .readOnly)
        ownsDescriptor = true
      } catch {
        throw RulesReaderError(
          code: .cannotOpen, path: path, reason: "cannot open: \(error)",
          hint: "check the path and permissions")
      }
    }
    defer { if ownsDescriptor { try? descriptor.close() } }
    let reader = LineReader(descriptor: descriptor, maxLineLength: maxLineLength)
    do {
      try reader.forEachLine { bytes, number, overlong in
        let text = String(decoding: bytes, as: UTF8.self)
        body(text[...], number, overlong)
      }
    } catch {
      throw RulesReaderError(
        code: .cannotRead, path: path, reason: "read failed: \(error)",
        hint: "check that the path is a readable file, FIFO or pipe")
    }
  }
}

extension Substring {
  /// The line without leading and trailing blanks (spaces and tabs).
  var trimmedBlanks: Substring {
    var s = self
    while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
    while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
    return s
  }
}
