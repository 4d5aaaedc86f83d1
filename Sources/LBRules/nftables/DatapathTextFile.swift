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

  /// Calls `body(line, number, overlong)` for every line. Returns whether the last line had no
  /// line end (tools always end their output with one, so such a line was cut). Throws
  /// `RulesReaderError` when the path cannot be opened or read.
  @discardableResult
  static func forEachLine(
    path: String, _ body: (_ line: Substring, _ number: Int, _ overlong: Bool) -> Void
  ) throws(RulesReaderError) -> Bool {
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
    // Every delivered line consumed at least its bytes and, all but an unterminated last one,
    // a terminator: fewer bytes read than that means the last line had none. (A `\r` or an
    // overlong line elsewhere can hide it; it never shows one that is not there.)
    var delivered = 0
    var lines = 0
    do {
      let total = try reader.forEachLine { bytes, number, overlong in
        delivered += bytes.count
        lines = number
        let text = String(decoding: bytes, as: UTF8.self)
        body(text[...], number, overlong)
      }
      return total < delivered + lines
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
