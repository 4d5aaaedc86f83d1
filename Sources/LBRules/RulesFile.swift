import LBConntrack
import LBCore
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// Opening and line-splitting shared by the rules readers.
enum RulesFile {
  /// Streams the lines of `path` (`-` for standard input) through `LineReader`.
  static func forEachLine(
    path: String, maxLineLength: Int,
    _ body: (_ line: UnsafeRawBufferPointer, _ number: Int, _ overlong: Bool) -> Void
  ) throws(RulesReaderError) {
    let descriptor: FileDescriptor
    if path == "-" {
      descriptor = .standardInput
    } else {
      do {
        descriptor = try FileDescriptor.open(FilePath(path), .readOnly)
      } catch {
        throw RulesReaderError(
          code: .cannotOpen, path: path, reason: "cannot open: \(error)",
          hint: "check the path and permissions")
      }
    }
    defer { if path != "-" { try? descriptor.close() } }
    do {
      try LineReader(descriptor: descriptor, maxLineLength: maxLineLength).forEachLine {
        line, number, overlong in
        body(line, number, overlong)
      }
    } catch {
      throw RulesReaderError(
        code: .cannotRead, path: path, reason: "read failed: \(error)",
        hint: "check that the path is a readable file, FIFO or pipe")
    }
  }

  /// Splits text in memory into lines (`\n`, `\r\n`); the last line needs no terminator.
  static func forEachLine(in text: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer, Int) -> Void) {
    var start = text.startIndex
    var number = 0
    while start < text.endIndex {
      let end = text[start...].firstIndex(of: 0x0A) ?? text.endIndex
      var line = UnsafeRawBufferPointer(rebasing: text[start..<end])
      if line.last == 0x0D { line = UnsafeRawBufferPointer(rebasing: line.dropLast()) }
      number += 1
      body(line, number)
      start = end + 1
    }
  }

  /// Whether `path` is a FIFO, socket or character device (`<(iptables-save)` gives a pipe):
  /// its first lines cannot be looked at without consuming them.
  static func isStream(_ path: String) -> Bool {
    var status = stat()
    guard stat(path, &status) == 0 else { return false }
    let type = status.st_mode & S_IFMT
    return type == S_IFIFO || type == S_IFSOCK || type == S_IFCHR
  }

  /// Whether `path` is a directory.
  static func isDirectory(_ path: String) -> Bool {
    var status = stat()
    return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
  }

  /// The names in a directory, sorted, without `.` and `..`.
  static func directoryEntries(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
  }

  /// The whole (small) file, for sniffing and side files such as `jiffies.txt`; at most `limit`
  /// bytes.
  static func head(_ path: String, limit: Int = 64 * 1024) -> [UInt8]? {
    guard let descriptor = try? FileDescriptor.open(FilePath(path), .readOnly) else { return nil }
    defer { try? descriptor.close() }
    var bytes = [UInt8](repeating: 0, count: limit)
    let count = (try? bytes.withUnsafeMutableBytes { try descriptor.read(into: $0) }) ?? 0
    return Array(bytes.prefix(count))
  }
}
