#if canImport(Glibc)
  import Glibc
#endif

/// A file per fuzzing process for readers that take a path: rewritten for every input, removed
/// at exit. Lives in the directory named by LBSCOPE_FUZZ_SCRATCH (scripts/fuzz points it at its
/// work directory) or /tmp.
enum Scratch {
  nonisolated(unsafe) static var cached: String?

  /// The scratch path, created on first use.
  static var path: String {
    if let cached { return cached }
    let directory = getenv("LBSCOPE_FUZZ_SCRATCH").map { String(cString: $0) } ?? "/tmp"
    let made = "\(directory)/lbscope-fuzz-input.\(getpid())"
    cached = made
    atexit { if let path = Scratch.cached { unlink(path) } }
    return made
  }

  /// Writes `bytes` to the scratch file (replacing what was there) and returns its path, or `nil`
  /// when the file cannot be written (then the input is skipped, not counted as a finding).
  static func write(_ bytes: UnsafeRawBufferPointer, name: String = "") -> String? {
    let target = name.isEmpty ? path : path + "." + name
    let fd = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var offset = 0
    while offset < bytes.count {
      guard let base = bytes.baseAddress else { break }
      let n = Glibc.write(fd, base + offset, bytes.count - offset)
      if n <= 0 { return nil }
      offset += n
    }
    return target
  }
}
