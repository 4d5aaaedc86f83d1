#if canImport(Glibc)
  import Glibc
#endif

/// One interface as a pcapng Interface Description Block describes it.
public struct CaptureInterface: Sendable, Equatable {
  public var name: String
  /// The libpcap link type (`DLT_*` as `LINKTYPE_*`), e.g. 276 for LINUX_SLL2.
  public var linkType: UInt16
  public var snaplen: UInt32

  public init(name: String, linkType: UInt16, snaplen: UInt32) {
    self.name = name
    self.linkType = linkType
    self.snaplen = snaplen
  }
}

/// Counters `pcap_stats` gives for one interface since the capture began.
public struct CaptureCounters: Sendable, Equatable {
  /// `ps_recv`: packets the kernel passed to the capture (after the filter).
  public var received: UInt64 = 0
  /// `ps_drop`: packets dropped because the capture buffer was full.
  public var droppedByKernel: UInt64 = 0
  /// `ps_ifdrop`: packets the interface or its driver dropped.
  public var droppedByInterface: UInt64 = 0

  public init(received: UInt64 = 0, droppedByKernel: UInt64 = 0, droppedByInterface: UInt64 = 0) {
    self.received = received
    self.droppedByKernel = droppedByKernel
    self.droppedByInterface = droppedByInterface
  }

  public var dropped: UInt64 { droppedByKernel + droppedByInterface }
}

/// When the writer starts a new file.
public struct RotationPolicy: Sendable {
  /// Largest size of one file in bytes, headers and statistics included; `nil`: no limit.
  public var maxBytes: Int?
  /// Longest span of one file in seconds (checked as packets arrive and on ticks); `nil`: none.
  public var maxSeconds: Double?

  public init(maxBytes: Int? = nil, maxSeconds: Double? = nil) {
    self.maxBytes = maxBytes
    self.maxSeconds = maxSeconds
  }
}

/// Writes pcapng files (draft-ietf-opsawg-pcapng) into a directory, rotating by size and time.
///
/// Every file is complete on its own: a Section Header Block, one Interface Description Block
/// per interface (link type, snap length, `if_name`, `if_tsresol` = 9, nanoseconds), Enhanced
/// Packet Blocks, and at close an Interface Statistics Block per interface with the
/// `pcap_stats` counters (`isb_ifrecv`, `isb_osdrop`, `isb_ifdrop`). A file is written as
/// `.NAME.partial` and renamed to `NAME` only once closed, so a reader never sees half a file.
///
/// Block layout (all little-endian here, as the SHB's byte-order magic says):
///
///     0                   1                   2                   3
///     +---------------------------------------------------------------+
///     |                          Block Type                           |
///     |                      Block Total Length                       |
///     /                          Block Body                           /
///     |                      Block Total Length                       |
///     +---------------------------------------------------------------+
public final class PcapngWriter {
  public let directory: String
  public let interfaces: [CaptureInterface]
  public let rotation: RotationPolicy
  /// File name prefix: files are `PREFIX-00001.pcapng`, … in the order written.
  public let prefix: String

  /// Completed files, in order, as full paths.
  public private(set) var files: [String] = []
  /// Packets written, in all files.
  public private(set) var packets = 0
  /// Gives the counters written into each file's statistics blocks when it is closed (by
  /// rotation or at the end); cumulative since the capture began, one per interface.
  public var statistics: () -> [CaptureCounters] = { [] }

  var fd: Int32 = -1
  var temporaryPath = ""
  var finalPath = ""
  var buffer: [UInt8] = []
  /// Bytes of the current file (written plus buffered).
  var fileBytes = 0
  var filePackets = 0
  var fileStartedNs: UInt64?
  var lastNs: UInt64 = 0
  var index = 0
  /// Size of the blocks every file starts with.
  let headerBytes: Int
  /// Size of the statistics blocks every file ends with.
  let trailerBytes: Int

  static let flushThreshold = 1 << 20

  /// Creates `directory` if needed and opens the first file.
  public init(
    directory: String, interfaces: [CaptureInterface], rotation: RotationPolicy, prefix: String = "capture"
  ) throws(CaptureError) {
    self.directory = directory
    self.interfaces = interfaces
    self.rotation = rotation
    self.prefix = prefix
    var header: [UInt8] = []
    Self.appendHeader(&header, interfaces: interfaces)
    headerBytes = header.count
    var trailer: [UInt8] = []
    for i in interfaces.indices { Self.appendStatistics(&trailer, interface: i, ns: 0, CaptureCounters()) }
    trailerBytes = trailer.count
    if let maxBytes = rotation.maxBytes, maxBytes < headerBytes + trailerBytes + Self.packetBlockSize(65_535)
    {
      throw CaptureError(
        code: .cannotWrite, path: directory, reason: "a rotation size of \(maxBytes) bytes is too small",
        hint: "give --rotate-size room for the headers and at least one packet")
    }
    if mkdir(directory, 0o755) != 0 && errno != EEXIST {
      throw CaptureError(
        code: .cannotWrite, path: directory, reason: "cannot create: \(String(cString: strerror(errno)))",
        hint: "check the parent directory exists and is writable")
    }
    try open()
  }

  deinit {
    if fd >= 0 {
      // Not closed by the owner (an error path): keep what was captured, complete.
      try? close()
    }
  }

  /// The largest EPB for `captured` bytes of packet data.
  static func packetBlockSize(_ captured: Int) -> Int { 32 + (captured + 3) & ~3 }

  /// Appends one packet (an Enhanced Packet Block) to the current file, first rotating when the
  /// packet would push the file past the size cap or the file is older than the time cap.
  /// `data` is copied before this returns.
  public func write(
    interface: Int, timestampNs: UInt64, originalLength: Int, data: UnsafeRawBufferPointer
  ) throws(CaptureError) {
    let size = Self.packetBlockSize(data.count)
    if filePackets > 0 {
      var rotate = false
      if let maxBytes = rotation.maxBytes, fileBytes + size + trailerBytes > maxBytes { rotate = true }
      if let maxSeconds = rotation.maxSeconds, let started = fileStartedNs,
        timestampNs > started, Double(timestampNs - started) / 1e9 >= maxSeconds
      {
        rotate = true
      }
      if rotate { try rotateFile() }
    }
    if fileStartedNs == nil { fileStartedNs = timestampNs }
    lastNs = max(lastNs, timestampNs)
    buffer.append32(6)
    buffer.append32(UInt32(size))
    buffer.append32(UInt32(interface))
    buffer.append32(UInt32(truncatingIfNeeded: timestampNs >> 32))
    buffer.append32(UInt32(truncatingIfNeeded: timestampNs))
    buffer.append32(UInt32(data.count))
    buffer.append32(UInt32(truncatingIfNeeded: max(originalLength, data.count)))
    buffer.append(contentsOf: data)
    buffer.pad4()
    buffer.append32(UInt32(size))
    fileBytes += size
    filePackets += 1
    packets += 1
    if buffer.count >= Self.flushThreshold { try flush() }
  }

  /// Rotates when the current file holds packets and is older than `maxSeconds` by the clock
  /// (`nowNs`, the same clock as packet timestamps), so a quiet capture still closes files.
  public func tick(nowNs: UInt64) throws(CaptureError) {
    guard let maxSeconds = rotation.maxSeconds, filePackets > 0, let started = fileStartedNs,
      nowNs > started, Double(nowNs - started) / 1e9 >= maxSeconds
    else { return }
    try rotateFile()
  }

  /// Finishes the current file with statistics blocks and starts the next one.
  func rotateFile() throws(CaptureError) {
    try close()
    try open()
  }

  /// Writes the statistics blocks (from `statistics`), flushes, syncs, closes and renames the
  /// current file into place. Safe to call twice.
  public func close() throws(CaptureError) {
    guard fd >= 0 else { return }
    for (i, counters) in statistics().enumerated() where i < interfaces.count {
      Self.appendStatistics(&buffer, interface: i, ns: lastNs, counters)
    }
    do {
      try flush()
    } catch {
      Glibc.close(fd)
      fd = -1
      throw error
    }
    let synced = fsync(fd) == 0
    let closed = Glibc.close(fd) == 0
    fd = -1
    guard synced && closed, rename(temporaryPath, finalPath) == 0 else {
      throw CaptureError(
        code: .cannotWrite, path: finalPath, reason: "cannot finish: \(String(cString: strerror(errno)))",
        hint: "check free space; the data so far is in \(temporaryPath)")
    }
    files.append(finalPath)
  }

  func open() throws(CaptureError) {
    index += 1
    let name = "\(prefix)-\(String(repeating: "0", count: max(0, 5 - String(index).count)))\(index).pcapng"
    finalPath = directory + "/" + name
    temporaryPath = directory + "/." + name + ".partial"
    if access(finalPath, F_OK) == 0 {
      throw CaptureError(
        code: .cannotWrite, path: finalPath, reason: "already exists",
        hint: "give --write a new or empty directory")
    }
    fd = Glibc.open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw CaptureError(
        code: .cannotWrite, path: temporaryPath, reason: "cannot create: \(String(cString: strerror(errno)))",
        hint: "check the directory is writable and no other capture writes into it")
    }
    buffer.removeAll(keepingCapacity: true)
    Self.appendHeader(&buffer, interfaces: interfaces)
    fileBytes = buffer.count
    filePackets = 0
    fileStartedNs = nil
  }

  /// Writes the buffered blocks to the file.
  public func flush() throws(CaptureError) {
    var offset = 0
    while offset < buffer.count {
      let n = buffer.withUnsafeBytes {
        Glibc.write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset)
      }
      if n < 0 {
        if errno == EINTR { continue }
        throw CaptureError(
          code: .cannotWrite, path: temporaryPath,
          reason: "cannot write: \(String(cString: strerror(errno)))",
          hint: "check free space")
      }
      offset += n
    }
    buffer.removeAll(keepingCapacity: true)
  }

  // MARK: blocks

  /// SHB (type 0x0A0D0D0A, byte-order magic 0x1A2B3C4D, version 1.0, section length unknown,
  /// `shb_userappl`) and one IDB (type 1) per interface.
  static func appendHeader(_ out: inout [UInt8], interfaces: [CaptureInterface]) {
    var options: [UInt8] = []
    options.appendOption(4, Array("lbscope".utf8))
    options.appendOption(0, [])
    out.append32(0x0A0D_0D0A)
    out.append32(UInt32(28 + options.count))
    out.append32(0x1A2B_3C4D)
    out.append16(1)
    out.append16(0)
    out.append32(0xFFFF_FFFF)
    out.append32(0xFFFF_FFFF)
    out.append(contentsOf: options)
    out.append32(UInt32(28 + options.count))
    for interface in interfaces {
      var options: [UInt8] = []
      options.appendOption(2, Array(interface.name.utf8))
      options.appendOption(9, [9])  // if_tsresol: 10^-9 s
      options.appendOption(0, [])
      out.append32(1)
      out.append32(UInt32(20 + options.count))
      out.append16(interface.linkType)
      out.append16(0)
      out.append32(interface.snaplen)
      out.append(contentsOf: options)
      out.append32(UInt32(20 + options.count))
    }
  }

  /// ISB (type 5) with `isb_ifrecv` (4), `isb_ifdrop` (5) and `isb_osdrop` (7).
  static func appendStatistics(_ out: inout [UInt8], interface: Int, ns: UInt64, _ c: CaptureCounters) {
    var options: [UInt8] = []
    options.appendOption(4, c.received.littleEndianBytes)
    options.appendOption(5, c.droppedByInterface.littleEndianBytes)
    options.appendOption(7, c.droppedByKernel.littleEndianBytes)
    options.appendOption(0, [])
    out.append32(5)
    out.append32(UInt32(24 + options.count))
    out.append32(UInt32(interface))
    out.append32(UInt32(truncatingIfNeeded: ns >> 32))
    out.append32(UInt32(truncatingIfNeeded: ns))
    out.append(contentsOf: options)
    out.append32(UInt32(24 + options.count))
  }
}

extension [UInt8] {
  mutating func append16(_ value: UInt16) {
    append(UInt8(truncatingIfNeeded: value))
    append(UInt8(truncatingIfNeeded: value >> 8))
  }

  mutating func append32(_ value: UInt32) {
    for shift in stride(from: 0, to: 32, by: 8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
  }

  mutating func pad4() {
    while count % 4 != 0 { append(0) }
  }

  /// One pcapng option: code, length, value padded to 32 bits.
  mutating func appendOption(_ code: UInt16, _ value: [UInt8]) {
    append16(code)
    append16(UInt16(value.count))
    append(contentsOf: value)
    pad4()
  }
}

extension UInt64 {
  var littleEndianBytes: [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: self >> (UInt64($0) * 8)) }
  }
}
