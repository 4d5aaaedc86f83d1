import LBBundle
import LBCapture
import LBCore
import LBLive

#if canImport(Glibc)
  import Glibc
#endif

/// What `lbscope collect` should do.
public struct CollectOptions: Sendable {
  /// The bundle directory to create; `OUTPUT.tar.gz` is written beside it.
  public var output: String
  /// Time box for each tool; a tool still running is killed and the kill recorded.
  public var timeout: Duration
  public var toolVersion: String
  /// Seconds of live capture on `any` (snap length 512) into `capture/*.pcapng`; `nil`: none.
  public var captureSeconds: Double?

  public init(
    output: String, timeout: Duration = .seconds(120), toolVersion: String, captureSeconds: Double? = nil
  ) {
    self.output = output
    self.timeout = timeout
    self.toolVersion = toolVersion
    self.captureSeconds = captureSeconds
  }
}

/// What was collected.
public struct CollectResult: Sendable {
  public var directory: String
  public var archive: String
  public var manifest: BundleManifest
}

/// Snapshots a node for offline analysis without changing it: datapath rules (iptables,
/// nftables, IPVS), the conntrack table (over netlink), xt_recent lists, jiffies and HZ,
/// conntrack statistics, kernel and tool versions, links and addresses.
///
/// Tools run from fixed argument vectors with `posix_spawn` (never a shell), each in its own
/// time box. A missing tool, a permission error or a time-out is recorded in `manifest.json`
/// and does not stop the rest. Everything is written into a temporary directory beside the
/// output, renamed into place when complete, then archived as `OUTPUT.tar.gz`.
public enum Collector {
  public static func collect(
    _ options: CollectOptions, progress: @escaping (String) -> Void = { _ in }
  ) throws(BundleError) -> CollectResult {
    var output = options.output
    while output.count > 1 && output.hasSuffix("/") { output.removeLast() }
    let archive = output + ".tar.gz"
    for path in [output, archive] where access(path, F_OK) == 0 {
      throw BundleError(
        path: path, reason: "already exists", hint: "name a new --output directory",
        category: .unwritableOutput)
    }
    let temporary = output + ".lbscope-tmp-\(getpid())"
    // An interrupt removes the unfinished bundle (Interrupt.swift in the command line).
    InterruptCleanup.register(temporary, .directory)
    guard mkdir(temporary, 0o755) == 0 else {
      InterruptCleanup.unregister(temporary)
      throw BundleError(
        path: temporary, reason: "cannot create: \(String(cString: strerror(errno)))",
        hint: "check the parent directory exists and is writable", category: .unwritableOutput)
    }
    var session = Session(root: temporary, timeout: options.timeout, progress: progress)
    session.run()
    if let captureSeconds = options.captureSeconds { session.capture(seconds: captureSeconds) }
    let manifest = BundleManifest(
      toolVersion: options.toolVersion, createdAt: session.startedAt, items: session.items)
    do {
      try session.writeText(manifest.rendered(), to: BundleManifest.fileName)
    } catch {
      throw BundleError(
        path: temporary, reason: "cannot write \(BundleManifest.fileName): \(error)",
        hint: "check free space", category: .unwritableOutput)
    }
    let renamed = InterruptCleanup.commit(temporary, as: output) {
      rename(temporary, output) == 0 ? 0 : errno
    }
    guard renamed == 0 else {
      throw BundleError(
        path: output, reason: "cannot rename \(temporary) into place: \(String(cString: strerror(renamed)))",
        hint: "", category: .unwritableOutput)
    }
    try BundleArchive.write(directory: output, to: archive)
    return CollectResult(directory: output, archive: archive, manifest: manifest)
  }
}

struct WriteFailure: Error, CustomStringConvertible {
  var description: String
}

/// One collection run: writes files under `root` and records one manifest item each.
struct Session {
  let root: String
  let timeout: Duration
  let progress: (String) -> Void
  var items: [ManifestItem] = []
  let startedAt = Int(time(nil))

  init(root: String, timeout: Duration, progress: @escaping (String) -> Void) {
    self.root = root
    self.timeout = timeout
    self.progress = progress
  }

  mutating func run() {
    command("iptables-save.txt", kind: "iptables-save", ["iptables-save", "-c"])
    command("ip6tables-save.txt", kind: "iptables-save", ["ip6tables-save", "-c"])
    bothIptablesBackends()
    command("nft-ruleset.txt", kind: "nft", ["nft", "list", "ruleset"])
    command("ipvsadm-S.txt", kind: "ipvs", ["ipvsadm", "-S", "-n"])
    command("ipvsadm-Ln-stats.txt", kind: "ipvs", ["ipvsadm", "-Ln", "--stats", "--exact"])
    command("ipvsadm-Lnc.txt", kind: "ipvs", ["ipvsadm", "-Lnc"])
    conntrackTable()
    xtRecent()
    jiffies()
    copy("/proc/net/stat/nf_conntrack", to: "nf_conntrack-stat.txt", kind: "conntrack-stats")
    command("conntrack-S.txt", kind: "conntrack-stats", ["conntrack", "-S"])
    kernel()
    for (tool, argv) in [
      ("iptables", ["iptables", "--version"]), ("nft", ["nft", "--version"]),
      ("ipvsadm", ["ipvsadm", "--version"]), ("conntrack", ["conntrack", "--version"]), ("ip", ["ip", "-V"]),
    ] {
      command("versions/\(tool).txt", kind: "versions", argv, stderrIsOutput: true)
    }
    command("ip-d-link.txt", kind: "links", ["ip", "-d", "link"])
    command("ip-addr.txt", kind: "addresses", ["ip", "addr"])
  }

  // MARK: items

  /// A short capture on `any` into `capture/capture-NNNNN.pcapng` (100 MB files at most), one
  /// manifest item (kind `pcap`) per file; drops from `pcap_stats` go into the item's `source`
  /// and, when any, its `error`. Missing CAP_NET_RAW is recorded, not thrown.
  mutating func capture(seconds span: Double) {
    let clock = ContinuousClock()
    let start = clock.now
    var options = CaptureOptions()
    options.snaplen = 512
    do {
      let capture = try LiveCapture(options)
      makeParent("capture/x")
      let writer = try PcapngWriter(
        directory: root + "/capture", interfaces: capture.interfaces,
        rotation: RotationPolicy(maxBytes: 100_000_000, maxSeconds: nil))
      writer.statistics = { [unowned capture] in capture.counters() }
      var failure: CaptureError?
      do {
        _ = try capture.run(
          writer: writer, stop: nil, deadline: start.advanced(by: .milliseconds(Int64(span * 1000))),
          maxPackets: nil)
      } catch {
        failure = error
      }
      do { try writer.close() } catch { failure = failure ?? error }
      let counters = capture.counters()
      let dropped = counters.reduce(0) { $0 + $1.dropped }
      let received = counters.reduce(0) { $0 + $1.received }
      let duration = seconds(start.duration(to: clock.now))
      for path in writer.files {
        var item = ManifestItem(
          file: String(path.dropFirst(root.count + 1)), kind: "pcap",
          source:
            "libpcap any, snaplen 512, \(span) s: \(writer.packets) packets; pcap_stats \(received) received, \(dropped) dropped"
        )
        item.durationSeconds = duration
        var status = stat()
        if stat(path, &status) == 0 { item.bytes = Int(status.st_size) }
        if let failure {
          item.error = failure.description
        } else if dropped > 0 {
          item.error = "\(dropped) packets dropped by the kernel or interface: counts are lower bounds"
        }
        record(item)
      }
    } catch {
      record(ManifestItem(file: nil, kind: "pcap", source: "libpcap any", error: error.description))
    }
  }

  /// Runs `argv` with standard output into `file`.
  mutating func command(_ file: String, kind: String, _ argv: [String], stderrIsOutput: Bool = false) {
    var item = ManifestItem(file: file, kind: kind, argv: argv)
    let path = root + "/" + file
    makeParent(file)
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      item.file = nil
      item.error = "cannot create \(file): \(String(cString: strerror(errno)))"
      record(item)
      return
    }
    let outcome = ChildProcess.run(argv, output: .descriptor(fd), timeout: timeout)
    var bytes = outcome.outputBytes
    if stderrIsOutput && bytes == 0 && !outcome.errorOutput.isEmpty {
      // Some tools print their version on standard error.
      try? writeAllBytes(fd, outcome.errorOutput)
      bytes = outcome.errorOutput.count
    }
    close(fd)
    var status = stat()
    if stat(path, &status) == 0 { bytes = Int(status.st_size) }
    item.exitStatus = outcome.status
    item.signal = outcome.signal
    item.timedOut = outcome.timedOut
    item.durationSeconds = seconds(outcome.duration)
    item.bytes = bytes
    let stderrLine = String(decoding: outcome.errorOutput, as: UTF8.self)
      .split(separator: "\n").first.map(String.init)
    if let failure = outcome.failure {
      item.error = "\(argv[0]): \(failure)"
    } else if outcome.timedOut {
      item.error = "killed after the \(seconds(timeout)) s time box; the file holds what it wrote before"
    } else if let signal = outcome.signal {
      item.error = "ended by signal \(signal)"
    } else if outcome.status != 0 {
      item.error = "exit status \(outcome.status ?? -1)" + (stderrLine.map { ": \($0)" } ?? "")
    }
    if bytes == 0 && item.error != nil {
      unlink(path)
      item.file = nil
      item.bytes = nil
    }
    record(item)
  }

  /// `iptables-save` shows one backend (the alternative in use). When the other backend also
  /// holds rules, both are saved, since kube-proxy and other software may write to either.
  mutating func bothIptablesBackends() {
    let legacy = ChildProcess.run(["iptables-legacy-save", "-c"], timeout: timeout)
    let nft = ChildProcess.run(["iptables-nft-save", "-c"], timeout: timeout)
    func holdsRules(_ outcome: ProcessOutcome) -> Bool {
      outcome.succeeded && String(decoding: outcome.output, as: UTF8.self).contains("\n-A ")
    }
    let both = holdsRules(legacy) && holdsRules(nft)
    for (file, outcome) in [("iptables-legacy-save.txt", legacy), ("iptables-nft-save.txt", nft)] {
      var item = ManifestItem(
        file: nil, kind: "iptables-save", argv: outcome.argv, exitStatus: outcome.status,
        signal: outcome.signal,
        timedOut: outcome.timedOut, durationSeconds: seconds(outcome.duration), bytes: nil)
      if let failure = outcome.failure {
        item.error = "\(outcome.argv[0]): \(failure)"
      } else if outcome.timedOut {
        item.error = "killed after the \(seconds(timeout)) s time box"
      } else if !both {
        item.error = "not kept: only one iptables backend holds rules (see iptables-save.txt)"
      } else {
        do {
          try writeBytes(outcome.output, to: file)
          item.file = file
          item.bytes = outcome.output.count
        } catch {
          item.error = "cannot write \(file): \(error)"
        }
      }
      record(item)
    }
  }

  /// The conntrack table over netlink, as `conntrack -L` text.
  mutating func conntrackTable() {
    let file = "conntrack-L.txt"
    var item = ManifestItem(file: file, kind: "conntrack", source: "netlink")
    let clock = ContinuousClock()
    let start = clock.now
    let path = root + "/" + file
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      item.file = nil
      item.error = "cannot create \(file): \(String(cString: strerror(errno)))"
      record(item)
      return
    }
    var buffer: [UInt8] = []
    var bytes = 0
    var writeError: String?
    do {
      let table = try LiveConntrackTable()
      let entries = try table.dumpText { line in
        buffer.append(contentsOf: line.utf8)
        buffer.append(0x0A)
        if buffer.count >= 1 << 20 {
          do { try writeAllBytes(fd, buffer) } catch { writeError = "\(error)" }
          bytes += buffer.count
          buffer.removeAll(keepingCapacity: true)
        }
      }
      try writeAllBytes(fd, buffer)
      bytes += buffer.count
      item.source = "netlink (\(entries) entries)"
    } catch let error as NetlinkError {
      item.error = error.description
    } catch {
      item.error = "\(error)"
    }
    if let writeError { item.error = "cannot write \(file): \(writeError)" }
    close(fd)
    item.bytes = bytes
    item.durationSeconds = seconds(start.duration(to: clock.now))
    if item.error != nil && bytes == 0 {
      unlink(path)
      item.file = nil
      item.bytes = nil
    }
    record(item)
  }

  /// Every list under /proc/net/xt_recent (one per `-m recent --name`).
  mutating func xtRecent() {
    let directory = "/proc/net/xt_recent"
    guard let handle = opendir(directory) else {
      if errno != ENOENT {
        record(
          ManifestItem(
            file: nil, kind: "xt-recent", source: directory,
            error: "cannot list: \(String(cString: strerror(errno)))"))
      }
      return
    }
    var names: [String] = []
    while let entry = readdir(handle) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) {
        String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
      }
      if name != "." && name != ".." && !name.contains("/") { names.append(name) }
    }
    closedir(handle)
    for name in names.sorted() {
      copy(directory + "/" + name, to: "xt_recent/" + name, kind: "xt-recent")
    }
  }

  /// `jiffies.txt` as scripts/lab writes it: `jiffies:` from /proc/timer_list, `CONFIG_HZ:` from
  /// the kernel's config (or measured: jiffies counted over half a second), `uptime:`.
  mutating func jiffies() {
    var item = ManifestItem(file: "jiffies.txt", kind: "jiffies", source: "/proc/timer_list")
    guard let first = readJiffies() else {
      item.file = nil
      item.error =
        "no jiffies in /proc/timer_list (\(String(cString: strerror(errno))); root is needed to read it)"
      record(item)
      return
    }
    var utsname = utsname()
    uname(&utsname)
    let release = withUnsafeBytes(of: utsname.release) {
      String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
    var hz: Int?
    if let config = readLimited("/boot/config-\(release)", limit: 4 << 20) {
      for line in config.split(separator: "\n") where line.hasPrefix("CONFIG_HZ=") {
        hz = Int(line.dropFirst("CONFIG_HZ=".count))
      }
      if hz != nil { item.source = "/proc/timer_list, /boot/config-\(release)" }
    }
    if hz == nil {
      // Measure: jiffies advance HZ times a second; snap to the values Linux allows.
      var start = timespec()
      clock_gettime(CLOCK_MONOTONIC, &start)
      usleep(500_000)
      var end = timespec()
      clock_gettime(CLOCK_MONOTONIC, &end)
      if let second = readJiffies() {
        let elapsed = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
        let rate = Double(second &- first) / elapsed
        hz = [100, 250, 300, 1000].min { abs(Double($0) - rate) < abs(Double($1) - rate) }
        item.source = "/proc/timer_list (CONFIG_HZ measured: \(Int(rate.rounded())) jiffies/s)"
      }
    }
    let uptime = readLimited("/proc/uptime", limit: 4096)?.split(separator: " ").first.map(String.init)
    var text = "jiffies: \(first)\n"
    if let hz { text += "CONFIG_HZ: \(hz)\n" }
    if let uptime { text += "uptime: \(uptime)\n" }
    do {
      try writeText(text, to: "jiffies.txt")
      item.bytes = text.utf8.count
    } catch {
      item.file = nil
      item.error = "\(error)"
    }
    record(item)
  }

  func readJiffies() -> UInt64? {
    guard let text = readLimited("/proc/timer_list", limit: 64 << 20) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("jiffies:") {
      return UInt64(line.dropFirst("jiffies:".count).trimmingSpaces())
    }
    return nil
  }

  /// `uname(2)`, as `uname -a` prints its first five fields.
  mutating func kernel() {
    var u = utsname()
    uname(&u)
    func field<T>(_ value: T) -> String {
      withUnsafeBytes(of: value) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }
    let text =
      [field(u.sysname), field(u.nodename), field(u.release), field(u.version), field(u.machine)]
      .joined(separator: " ") + "\n"
    var item = ManifestItem(file: "uname.txt", kind: "kernel", source: "uname(2)")
    do {
      try writeText(text, to: "uname.txt")
      item.bytes = text.utf8.count
    } catch {
      item.file = nil
      item.error = "\(error)"
    }
    record(item)
  }

  /// Copies a kernel file (read in Swift, no `cat`).
  mutating func copy(_ source: String, to file: String, kind: String) {
    var item = ManifestItem(file: file, kind: kind, source: source)
    guard let bytes = readBytes(source, limit: 1 << 30) else {
      item.file = nil
      item.error = "cannot read: \(String(cString: strerror(errno)))"
      record(item)
      return
    }
    do {
      try writeBytes(bytes, to: file)
      item.bytes = bytes.count
    } catch {
      item.file = nil
      item.error = "\(error)"
    }
    record(item)
  }

  mutating func record(_ item: ManifestItem) {
    items.append(item)
    let what = item.argv?.joined(separator: " ") ?? item.source ?? item.kind
    let size = item.bytes.map { " \($0) bytes" } ?? ""
    let time = item.durationSeconds.map { " \(($0 * 100).rounded() / 100) s" } ?? ""
    progress("collect: \(what):\(time)\(size)" + (item.error.map { " (\($0))" } ?? ""))
  }

  // MARK: files

  func makeParent(_ file: String) {
    var parts = file.split(separator: "/").dropLast()
    var path = root
    while let part = parts.first {
      parts = parts.dropFirst()
      path += "/" + part
      mkdir(path, 0o755)
    }
  }

  func writeText(_ text: String, to file: String) throws {
    try writeBytes(Array(text.utf8), to: file)
  }

  func writeBytes(_ bytes: [UInt8], to file: String) throws {
    makeParent(file)
    let fd = open(root + "/" + file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw WriteFailure(description: "cannot create \(file): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    try writeAllBytes(fd, bytes)
  }
}

func writeAllBytes(_ fd: Int32, _ bytes: [UInt8]) throws {
  var offset = 0
  while offset < bytes.count {
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
    if n < 0 {
      if errno == EINTR { continue }
      throw WriteFailure(description: String(cString: strerror(errno)))
    }
    offset += n
  }
}

/// Reads a file up to `limit` bytes (proc files report size 0, so read until end of file).
func readBytes(_ path: String, limit: Int) -> [UInt8]? {
  let fd = open(path, O_RDONLY | O_CLOEXEC)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  var out: [UInt8] = []
  var buffer = [UInt8](repeating: 0, count: 65536)
  while out.count < limit {
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    if n < 0 && errno == EINTR { continue }
    if n < 0 { return nil }
    if n == 0 { break }
    out.append(contentsOf: buffer[0..<n])
  }
  return out
}

func readLimited(_ path: String, limit: Int) -> String? {
  readBytes(path, limit: limit).map { String(decoding: $0, as: UTF8.self) }
}

func seconds(_ duration: Duration) -> Double {
  let c = duration.components
  return ((Double(c.seconds) + Double(c.attoseconds) / 1e18) * 1000).rounded() / 1000
}

extension Substring {
  func trimmingSpaces() -> Substring {
    var s = self
    while s.first == " " || s.first == "\t" { s.removeFirst() }
    while s.last == " " || s.last == "\t" { s.removeLast() }
    return s
  }
}
