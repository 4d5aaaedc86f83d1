import LBCore

#if canImport(Glibc)
  import Glibc
#endif

/// One file of a bundle, ready for a reader.
public struct BundleFile: Sendable, Equatable {
  /// A path a reader can open (inside the bundle directory, or inside the extracted archive).
  public var path: String
  /// Its name inside the bundle (`conntrack-L.txt`, `xt_recent/KUBE-SEP-…`).
  public var name: String
  /// The manifest's kind for it (`conntrack`, `iptables-save`, `jiffies`, …).
  public var kindName: String
  /// The report contract's input kind, when the file is an analysable input.
  public var kind: InputKind? { InputKind(rawValue: kindName) }
}

/// A node snapshot written by `lbscope collect`: a directory with `manifest.json`, or the same
/// directory as a `.tar.gz`. Opening an archive extracts it into a private temporary directory
/// that lives as long as the `Bundle` value.
public final class Bundle {
  /// What was given.
  public let path: String
  /// The files the manifest lists that exist, in manifest order.
  public let files: [BundleFile]
  public let manifest: BundleManifest
  /// The temporary directory an archive was extracted into, removed on `deinit`.
  let extracted: String?
  let extractedEntries: [String]

  /// Limits that keep a hostile archive from filling the disk.
  public static let maxEntries = 100_000
  public static let maxTotalBytes = 64 << 30

  /// Whether `path` names a bundle: a directory holding `manifest.json`, or a `.tar.gz`/`.tgz`.
  public static func isBundle(_ path: String) -> Bool {
    if path.hasSuffix(".tar.gz") || path.hasSuffix(".tgz") { return true }
    var status = stat()
    guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else { return false }
    return access(path + "/" + BundleManifest.fileName, F_OK) == 0
  }

  /// Opens a bundle directory or archive and lists its files with their input kinds.
  public static func open(_ path: String) throws(BundleError) -> Bundle {
    var status = stat()
    guard stat(path, &status) == 0 else {
      throw BundleError(
        path: path, reason: "cannot open: \(String(cString: strerror(errno)))", hint: "check the path",
        category: .unreadableInput)
    }
    if status.st_mode & S_IFMT == S_IFDIR {
      return try Bundle(path: path, root: path, extracted: nil, entries: [])
    }
    let (root, entries) = try BundleArchive.extract(path)
    do throws(BundleError) {
      // The archive holds one top directory, the bundle.
      let tops = Set(entries.compactMap { $0.split(separator: "/").first.map(String.init) })
      guard tops.count == 1, let top = tops.first else {
        throw BundleError(
          path: path, reason: "the archive does not hold one bundle directory",
          hint: "give the .tar.gz lbscope collect wrote", category: .unrecognizedInput)
      }
      return try Bundle(path: path, root: root + "/" + top, extracted: root, entries: entries)
    } catch {
      BundleArchive.remove(root: root, entries: entries)
      throw error
    }
  }

  init(path: String, root: String, extracted: String?, entries: [String]) throws(BundleError) {
    self.path = path
    self.extracted = extracted
    extractedEntries = entries
    guard let bytes = readWholeFile(root + "/" + BundleManifest.fileName, limit: 64 << 20) else {
      throw BundleError(
        path: path, reason: "no readable \(BundleManifest.fileName)",
        hint: "a bundle is what `lbscope collect --output DIR` writes", category: .unrecognizedInput)
    }
    guard let manifest = BundleManifest.parse(bytes) else {
      throw BundleError(
        path: path, reason: "\(BundleManifest.fileName) is not a bundle manifest",
        hint: "a bundle is what `lbscope collect --output DIR` writes", category: .unrecognizedInput)
    }
    self.manifest = manifest
    var files: [BundleFile] = []
    for item in manifest.items {
      guard let name = item.file, BundleArchive.isSafe(name) else { continue }
      let full = root + "/" + name
      if access(full, R_OK) == 0 { files.append(BundleFile(path: full, name: name, kindName: item.kind)) }
    }
    self.files = files
  }

  deinit {
    if let extracted {
      BundleArchive.remove(root: extracted, entries: extractedEntries)
      InterruptCleanup.unregister(extracted)
    }
  }

  /// The files of the given kinds, in manifest order.
  public func files(of kinds: Set<InputKind>) -> [BundleFile] {
    files.filter { $0.kind.map(kinds.contains) ?? false }
  }
}

/// Reads a whole (small) file, or `nil`.
func readWholeFile(_ path: String, limit: Int) -> [UInt8]? {
  let fd = open(path, O_RDONLY | O_CLOEXEC)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  var out: [UInt8] = []
  var buffer = [UInt8](repeating: 0, count: 65536)
  while out.count <= limit {
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    if n < 0 && errno == EINTR { continue }
    if n < 0 { return nil }
    if n == 0 { return out }
    out.append(contentsOf: buffer[0..<n])
  }
  return nil
}

/// Writing and extracting a bundle's `.tar.gz` (ustar inside gzip, both done here with zlib, so
/// the node needs no `tar` and extraction never trusts an archive's paths).
public enum BundleArchive {
  /// Archives the directory `root` (whose last component becomes the archive's top directory)
  /// into `archive`, through a temporary file renamed into place.
  public static func write(directory root: String, to archive: String) throws(BundleError) {
    try typed(archive) { try writeUntyped(directory: root, to: archive) }
  }

  static func writeUntyped(directory root: String, to archive: String) throws {
    let top = root.split(separator: "/").last.map(String.init) ?? "bundle"
    let names = listTree(root)
    let temporary = archive + ".lbscope-tmp-\(getpid())"
    InterruptCleanup.register(temporary, .file)
    defer { InterruptCleanup.unregister(temporary) }
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw BundleError(
        path: archive, reason: "cannot create: \(String(cString: strerror(errno)))",
        hint: "check the directory is writable", category: .unwritableOutput)
    }
    do {
      defer { close(fd) }
      let gzip = try GzipWriter(descriptor: fd)
      let now = Int(time(nil))
      func add(_ header: [UInt8]?, _ name: String) throws {
        guard let header else {
          throw BundleError(
            path: archive, reason: "name too long for ustar: \(name)", hint: "", category: .unwritableOutput)
        }
        try header.withUnsafeBytes { b in try gzip.write(b) }
      }
      try add(Ustar.header(name: top + "/", size: 0, directory: true, mtime: now), top)
      var buffer = [UInt8](repeating: 0, count: 1 << 16)
      for (name, isDirectory) in names {
        let full = root + "/" + name
        if isDirectory {
          try add(Ustar.header(name: top + "/" + name + "/", size: 0, directory: true, mtime: now), name)
          continue
        }
        let input = open(full, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else {
          throw BundleError(
            path: full, reason: "cannot read: \(String(cString: strerror(errno)))", hint: "",
            category: .unwritableOutput)
        }
        defer { close(input) }
        var status = stat()
        fstat(input, &status)
        let size = Int(status.st_size)
        try add(Ustar.header(name: top + "/" + name, size: size, directory: false, mtime: now), name)
        var written = 0
        while written < size {
          let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, min($0.count, size - written)) }
          if n < 0 && errno == EINTR { continue }
          guard n > 0 else {
            throw BundleError(
              path: full, reason: "changed size while archiving", hint: "", category: .unwritableOutput)
          }
          try buffer.withUnsafeBytes { b in try gzip.write(UnsafeRawBufferPointer(rebasing: b[0..<n])) }
          written += n
        }
        let padding = (Ustar.block - size % Ustar.block) % Ustar.block
        if padding > 0 {
          try [UInt8](repeating: 0, count: padding).withUnsafeBytes { b in try gzip.write(b) }
        }
      }
      try [UInt8](repeating: 0, count: 2 * Ustar.block).withUnsafeBytes { b in try gzip.write(b) }
      try gzip.finish()
      var failure = fsync(fd) == 0 ? 0 : errno
      if failure == 0 {
        failure = InterruptCleanup.commit(temporary, as: archive) {
          rename(temporary, archive) == 0 ? 0 : errno
        }
      }
      guard failure == 0 else {
        throw BundleError(
          path: archive, reason: "cannot write: \(String(cString: strerror(failure)))", hint: "",
          category: .unwritableOutput)
      }
    } catch {
      unlink(temporary)
      throw error
    }
  }

  /// Relative paths under `root`, directories before their contents, sorted by name so the
  /// archive's order does not depend on the file system.
  static func listTree(_ root: String, prefix: String = "") -> [(String, Bool)] {
    guard let directory = opendir(prefix.isEmpty ? root : root + "/" + prefix) else { return [] }
    var names: [String] = []
    while let entry = readdir(directory) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) {
        String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
      }
      if name != "." && name != ".." { names.append(name) }
    }
    closedir(directory)
    var out: [(String, Bool)] = []
    for name in names.sorted() {
      let relative = prefix.isEmpty ? name : prefix + "/" + name
      var status = stat()
      guard lstat(root + "/" + relative, &status) == 0 else { continue }
      switch status.st_mode & S_IFMT {
      case S_IFDIR:
        out.append((relative, true))
        out += listTree(root, prefix: relative)
      case S_IFREG:
        out.append((relative, false))
      default:
        continue  // a bundle holds only files and directories
      }
    }
    return out
  }

  /// A relative path without `..`, empty or absolute components.
  static func isSafe(_ name: String) -> Bool {
    guard !name.hasPrefix("/"), !name.isEmpty else { return false }
    let parts = name.split(separator: "/", omittingEmptySubsequences: false)
    return !parts.contains { $0 == ".." || $0 == "." } && !parts.dropLast().contains { $0.isEmpty }
  }

  /// Extracts the regular files and directories of a `.tar.gz` into a new private temporary
  /// directory; returns it and the names extracted. Other entry types are skipped; unsafe
  /// names, bad headers and oversize archives fail.
  static func extract(_ archive: String) throws(BundleError) -> (String, [String]) {
    try typed(archive) { try extractUntyped(archive) }
  }

  static func extractUntyped(_ archive: String) throws -> (String, [String]) {
    let fd = open(archive, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      throw BundleError(
        path: archive, reason: "cannot open: \(String(cString: strerror(errno)))",
        hint: "check the path and permissions", category: .unreadableInput)
    }
    defer { close(fd) }
    var template = Array("/tmp/lbscope-bundle-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap { mkdtemp($0) } })
    else {
      throw BundleError(
        path: archive, reason: "cannot make a temporary directory", hint: "check /tmp",
        category: .unwritableOutput)
    }
    let root = String(cString: made)
    // An interrupt removes it; `Bundle.deinit` (or the failure below) removes it otherwise.
    InterruptCleanup.register(root, .directory)
    var entries: [String] = []
    do {
      let gzip = try GzipReader(descriptor: fd, path: archive)
      var header = [UInt8](repeating: 0, count: Ustar.block)
      var buffer = [UInt8](repeating: 0, count: 1 << 16)
      var total = 0
      func fail(_ reason: String) -> BundleError {
        BundleError(
          path: archive, reason: reason, hint: "give the .tar.gz lbscope collect wrote, or its directory",
          category: .unrecognizedInput)
      }
      while true {
        let got = try header.withUnsafeMutableBytes { b in try gzip.read(into: b) }
        if got == 0 { break }  // no end blocks: tolerated, as tar does
        guard got == Ustar.block else { throw fail("the archive ends inside a header") }
        if header.allSatisfy({ $0 == 0 }) { break }
        guard let entry = header.withUnsafeBytes({ Ustar.parse($0) }) else {
          throw fail("not a ustar archive, or a damaged header")
        }
        var name = entry.name
        if name.hasSuffix("/") { name.removeLast() }
        guard isSafe(name) else { throw fail("unsafe path in archive: \(entry.name)") }
        guard entries.count < Bundle.maxEntries else { throw fail("more than \(Bundle.maxEntries) entries") }
        total += entry.size
        guard total <= Bundle.maxTotalBytes else { throw fail("more than \(Bundle.maxTotalBytes) bytes") }
        let padded = (entry.size + Ustar.block - 1) / Ustar.block * Ustar.block
        let isFile = entry.type == 0x30 || entry.type == 0
        let isDirectory = entry.type == 0x35
        var output: Int32 = -1
        if isDirectory {
          guard mkdir(root + "/" + name, 0o700) == 0 || errno == EEXIST else {
            throw fail("cannot extract \(name)")
          }
          entries.append(name)
        } else if isFile {
          output = open(root + "/" + name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
          guard output >= 0 else { throw fail("cannot extract \(name): \(String(cString: strerror(errno)))") }
          entries.append(name)
        }
        defer { if output >= 0 { close(output) } }
        var left = padded
        var dataLeft = entry.size
        while left > 0 {
          let want = min(left, buffer.count)
          let n = try buffer.withUnsafeMutableBytes { b in
            try gzip.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<want]))
          }
          guard n == want else { throw fail("the archive ends inside \(name)") }
          if output >= 0 && dataLeft > 0 {
            try writeAll(output, buffer[0..<min(n, dataLeft)])
          }
          dataLeft = max(0, dataLeft - n)
          left -= n
        }
      }
    } catch {
      remove(root: root, entries: entries)
      InterruptCleanup.unregister(root)
      throw error
    }
    return (root, entries)
  }

  /// Removes an extraction: its entries deepest first, then the directory.
  static func remove(root: String, entries: [String]) {
    for name in entries.sorted(by: { $0.count > $1.count }) {
      let full = root + "/" + name
      if unlink(full) != 0 { rmdir(full) }
    }
    rmdir(root)
  }
}

/// Runs `body`, passing a `BundleError` through and wrapping anything else (there is nothing
/// else today: the closures of `withUnsafeBytes` only lose the error's type).
func typed<T>(_ path: String, _ body: () throws -> T) throws(BundleError) -> T {
  do {
    return try body()
  } catch let error as BundleError {
    throw error
  } catch {
    throw BundleError(path: path, reason: "\(error)", hint: "", category: .unreadableInput)
  }
}
