import LBCore
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// A link-layer header type as `pcap-linktype(7)` numbers it (`LINKTYPE_*`, the values written
/// to files, which differ from some platforms' `DLT_*`).
public struct LinkType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  public var rawValue: UInt32
  @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

  public static let null = LinkType(rawValue: 0)
  public static let ethernet = LinkType(rawValue: 1)
  public static let raw = LinkType(rawValue: 101)
  public static let loop = LinkType(rawValue: 108)
  public static let linuxSLL = LinkType(rawValue: 113)
  public static let ipv4 = LinkType(rawValue: 228)
  public static let ipv6 = LinkType(rawValue: 229)
  public static let linuxSLL2 = LinkType(rawValue: 276)

  public var description: String {
    switch self {
    case .null: "NULL"
    case .ethernet: "EN10MB"
    case .raw: "RAW"
    case .loop: "LOOP"
    case .linuxSLL: "LINUX_SLL"
    case .ipv4: "IPV4"
    case .ipv6: "IPV6"
    case .linuxSLL2: "LINUX_SLL2"
    default: "LINKTYPE \(rawValue)"
    }
  }
}

/// One packet record as the capture file holds it. `data` is lent: valid until the reader's
/// next call.
public struct CapturedPacket {
  /// Nanoseconds since the Unix epoch (wrapping for timestamps past 2262).
  public var timestamp: Int64
  public var linkType: LinkType
  /// Interface number, counted over all pcapng sections of the file (0 for pcap).
  public var interface: Int
  /// Length on the wire; `data` may be shorter (snapshot length).
  public var originalLength: Int
  public var data: ByteView
  /// 1-based record number in its file.
  public var number: Int
  /// Byte offset of the record in its file.
  public var fileOffset: Int
}

/// Reads a pcap or pcapng file as a stream of packets, in chunks, without loading the file.
///
/// Formats: pcap (`pcap-savefile(5)`: both byte orders, microsecond and nanosecond magic) and
/// pcapng (draft-ietf-opsawg-pcapng: several sections of either byte order, several interfaces
/// with their own link types and timestamp resolutions, enhanced, simple and obsolete packet
/// blocks; other blocks skipped).
///
/// File-level damage (a record length that cannot be right, a file that ends mid-record) ends
/// the file: it is counted in `summary` with its byte offset and `summary.partial` is set; the
/// packets before it stand. Only a file that cannot be opened or is no capture at all throws.
public final class CaptureFileReader {
  /// Largest record accepted. libpcap refuses records over 256 KiB for most link types; pcapng
  /// blocks may carry options, so allow more, but never let a damaged length claim gigabytes.
  public static let maxRecordLength = 16 << 20
  /// Bytes read from the file per `read(2)`.
  public static let chunkSize = 4 << 20

  /// What was read: records, counted issues and notes.
  public var summary: InputSummary {
    var summary = recorded
    summary.records += recordCount
    return summary
  }
  /// The summary but for its record count, kept apart: a plain counter bumped per packet costs
  /// nothing, where changing a struct held by a class is checked for exclusive access each time.
  var recorded: InputSummary
  @exclusivity(unchecked) var recordCount = 0
  /// Bytes consumed so far and the file's size (0 when unknown), for progress. Written per
  /// packet by the one reading thread, so unchecked like the cursor.
  @exclusivity(unchecked) public private(set) var bytesConsumed = 0
  public let fileSize: Int

  enum Format { case pcap, pcapng }

  struct Interface {
    var linkType: LinkType
    var snapLength: Int
    /// Timestamp units: `10^-decimalExponent` s, or `2^-binaryExponent` s when `binary`.
    var binary = false
    var exponent = 6
    var offsetSeconds: Int64 = 0
  }

  /// Files at least this large are read ahead on another thread (`ReadAhead`).
  public static let readAheadMinimum = 16 << 20

  let descriptor: FileDescriptor
  let ownsDescriptor: Bool
  /// The unconsumed bytes live in `buffer`: the reader's own allocation (`owned`), or the chunk
  /// of `readAhead` in use (`chunk`).
  @exclusivity(unchecked) var buffer: UnsafeMutableRawBufferPointer
  @exclusivity(unchecked) var owned: UnsafeMutableRawBufferPointer
  var readAhead: ReadAhead?
  @exclusivity(unchecked) var chunk: ReadAhead.Chunk?
  /// Unconsumed bytes are `buffer[start..<end]`; `fileOffsetOfStart` is where `start` lies in the file.
  @exclusivity(unchecked) var start = 0
  @exclusivity(unchecked) var end = 0
  @exclusivity(unchecked) var fileOffsetOfStart = 0
  var atEOF = false
  var format: Format = .pcap
  var bigEndian = false
  // pcap
  var pcapLinkType = LinkType.ethernet
  var pcapNanoseconds = false
  // pcapng
  var interfaces: [Interface] = []
  var interfaceBase = 0
  var sectionCount = 0
  @exclusivity(unchecked) var packetNumber = 0
  var finished = false
  /// Packets the capturing interfaces reported dropped (pcapng ISB `isb_ifdrop`).
  public private(set) var droppedByInterfaces: UInt64 = 0

  /// Opens `path` and reads its header. Throws only when it cannot be opened or read, or is not
  /// a capture file.
  public convenience init(path: String, readAhead: Bool = true) throws(PcapError) {
    let descriptor: FileDescriptor
    do {
      descriptor = try FileDescriptor.open(FilePath(path), .readOnly)
    } catch {
      throw PcapError(
        code: .cannotOpen, path: path, reason: "cannot open: \(error)",
        hint: "check the path and permissions", errno: error as? Errno)
    }
    try self.init(descriptor: descriptor, path: path, owns: true, readAhead: readAhead)
  }

  /// Reads from an open descriptor (standard input, a pipe); closes it only when `owns`. A
  /// regular file of at least `readAheadMinimum` bytes is read ahead on another thread unless
  /// `readAhead` is false.
  public init(descriptor: FileDescriptor, path: String, owns: Bool, readAhead: Bool = true) throws(PcapError)
  {
    self.descriptor = descriptor
    self.ownsDescriptor = owns
    recorded = InputSummary(path: path, kind: .pcap)
    var status = stat()
    if fstat(descriptor.rawValue, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG {
      fileSize = Int(status.st_size)
      _ = posix_fadvise(descriptor.rawValue, 0, 0, POSIX_FADV_SEQUENTIAL)
    } else if (status.st_mode & S_IFMT) == S_IFDIR {
      if owns { try? descriptor.close() }
      throw PcapError(
        code: .cannotRead, path: path, reason: "is a directory", hint: "name a capture file")
    } else {
      fileSize = 0
    }
    owned = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
    buffer = owned
    if readAhead && fileSize >= Self.readAheadMinimum {
      self.readAhead = ReadAhead(descriptor: descriptor.rawValue, from: 0, to: fileSize)
    }
    do {
      try readFileHeader()
    } catch {
      self.readAhead?.stop()
      throw error
    }
  }

  deinit {
    readAhead?.stop()
    owned.deallocate()
    if ownsDescriptor { try? descriptor.close() }
  }

  var path: String { recorded.path }

  // MARK: - Buffering

  /// Makes at least `count` unconsumed bytes available, reading (and growing the buffer up to
  /// `maxRecordLength` plus a header) as needed. False at end of file.
  ///
  /// Inlined: twice per packet the bytes are already there, and a call for that one compare was
  /// about 3% of the decoding thread's instructions.
  @inline(__always)
  func ensure(_ count: Int) throws(PcapError) -> Bool {
    if end - start >= count { return true }
    return try refill(count)
  }

  /// `ensure` when the buffer holds fewer than `count` bytes.
  func refill(_ count: Int) throws(PcapError) -> Bool {
    if readAhead != nil { return try ensureAhead(count) }
    if count > buffer.count {
      let grown = UnsafeMutableRawBufferPointer.allocate(
        byteCount: max(count, buffer.count * 2), alignment: 16)
      if let from = buffer.baseAddress, let to = grown.baseAddress, end > start {
        to.copyMemory(from: from + start, byteCount: end - start)
      }
      end -= start
      start = 0
      owned.deallocate()
      owned = grown
      buffer = grown
    } else if start > 0 {
      if let base = buffer.baseAddress, end > start {
        base.copyMemory(from: base + start, byteCount: end - start)
      }
      end -= start
      start = 0
    }
    while end - start < count && !atEOF {
      var room = UnsafeMutableRawBufferPointer(rebasing: buffer[end...])
      if fileSize > 0 {
        // A regular file is read up to its size when opened: one still being written (tcpdump
        // -w, a copy in progress) ends there instead of being followed for ever.
        let left = fileSize - (fileOffsetOfStart + end - start)
        if left <= 0 {
          atEOF = true
          noteGrowth()
          break
        }
        if left < room.count { room = UnsafeMutableRawBufferPointer(rebasing: room[..<left]) }
      }
      let n: Int
      do {
        n = try descriptor.read(into: room)
      } catch {
        throw PcapError(
          code: .cannotRead, path: path, byteOffset: fileOffsetOfStart + end - start,
          reason: "read failed: \(error)", hint: "check the disk and the file", errno: error as? Errno)
      }
      if n == 0 { atEOF = true } else { end += n }
    }
    return end - start >= count
  }

  /// `ensure` for a file read ahead: takes the next chunks, with the unconsumed bytes put in
  /// front of each (in its prefix room, or in `owned` for a record longer than that).
  func ensureAhead(_ count: Int) throws(PcapError) -> Bool {
    guard let readAhead else { return false }
    while end - start < count && !atEOF {
      guard let next = readAhead.next() else {
        atEOF = true
        noteGrowth()
        break
      }
      let tail = end - start
      let fileOffset = fileOffsetOfStart + tail
      if next.error != 0 {
        readAhead.recycle(next)
        throw PcapError(
          code: .cannotRead, path: path, byteOffset: next.fileOffset + next.count,
          reason: "read failed: \(Errno(rawValue: next.error))", hint: "check the disk and the file",
          errno: Errno(rawValue: next.error))
      }
      guard next.fileOffset == fileOffset, let from = buffer.baseAddress, let base = next.storage.baseAddress
      else {
        readAhead.recycle(next)
        atEOF = true
        break
      }
      if tail <= readAhead.prefix {
        (base + readAhead.prefix - tail).copyMemory(from: from + start, byteCount: tail)
        if let used = chunk { readAhead.recycle(used) }
        chunk = next
        buffer = next.storage
        start = readAhead.prefix - tail
        end = readAhead.prefix + next.count
      } else {
        // A record longer than the prefix room: joined in the reader's own buffer.
        let needed = tail + next.count
        if needed > owned.count {
          let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: needed, alignment: 16)
          if let to = grown.baseAddress { to.copyMemory(from: from + start, byteCount: tail) }
          owned.deallocate()
          owned = grown
        } else if let to = owned.baseAddress {
          to.copyMemory(from: from + start, byteCount: tail)  // memmove: may overlap in `owned`
        }
        if let to = owned.baseAddress {
          (to + tail).copyMemory(from: base + readAhead.prefix, byteCount: next.count)
        }
        readAhead.recycle(next)
        if let used = chunk { readAhead.recycle(used) }
        chunk = nil
        buffer = owned
        start = 0
        end = needed
      }
      if next.count == 0 { atEOF = true }
    }
    return end - start >= count
  }

  /// Says in the summary when the file grew past the size it had when opened.
  func noteGrowth() {
    var status = stat()
    guard fstat(descriptor.rawValue, &status) == 0, Int(status.st_size) > fileSize else { return }
    recorded.notes.append(
      "the file grew while it was read: read its first \(fileSize) bytes (its size when opened), not the \(Int(status.st_size) - fileSize) bytes written since"
    )
  }

  /// The unconsumed bytes as a view.
  var available: ByteView {
    ByteView(UnsafeRawBufferPointer(rebasing: buffer[start..<end]))
  }

  func consume(_ count: Int) {
    start += count
    fileOffsetOfStart += count
    bytesConsumed = fileOffsetOfStart
  }

  // MARK: - Damage

  /// Ends the file at a place where it is damaged: the issue is counted with its byte offset
  /// and the input is marked partial.
  func damaged(_ kind: InputIssueKind, _ reason: String) {
    recorded.record(
      InputIssue(
        kind: kind, line: packetNumber + 1, message: "\(reason) at byte \(fileOffsetOfStart)"))
    recorded.partial = true
    finished = true
  }

  // MARK: - Headers

  func readFileHeader() throws(PcapError) {
    guard try ensure(4), let magic = available.u32(0, bigEndian: false) else {
      if end == start {
        // An empty file is a capture with nothing in it only if nothing was promised.
        throw PcapError(
          code: .notCapture, path: path, byteOffset: 0, reason: "empty file, not a pcap or pcapng capture",
          hint: "capture with `tcpdump -i any -w FILE`")
      }
      throw PcapError(
        code: .notCapture, path: path, byteOffset: 0, reason: "too short to be a capture file",
        hint: "capture with `tcpdump -i any -w FILE`")
    }
    switch magic {
    case 0xA1B2_C3D4, 0xD4C3_B2A1, 0xA1B2_3C4D, 0x4D3C_B2A1:
      format = .pcap
      bigEndian = magic == 0xD4C3_B2A1 || magic == 0x4D3C_B2A1
      pcapNanoseconds = magic == 0xA1B2_3C4D || magic == 0x4D3C_B2A1
      readPcapHeader()
    case 0x0A0D_0D0A:
      format = .pcapng
      recorded.notes.append("pcapng")
    default:
      throw PcapError(
        code: .notCapture, path: path, byteOffset: 0,
        reason: "not a pcap or pcapng capture (magic 0x\(String(magic, radix: 16)))",
        hint: "capture with `tcpdump -i any -w FILE`; convert other formats with `editcap -F pcapng`")
    }
  }

  /// The 24-byte pcap file header (`pcap-savefile(5)`):
  ///
  ///     0       magic (0xa1b2c3d4 µs / 0xa1b23c4d ns, in the writer's byte order)
  ///     4       version major (2), minor (4)
  ///     8       reserved (thiszone), 12 reserved (sigfigs)
  ///     16      snaplen
  ///     20      link type (low 16 bits), FCS length (bits 28-31, present flag bit 26)
  func readPcapHeader() {
    guard (try? ensure(24)) == true, let major = available.u16(4, bigEndian: bigEndian),
      let minor = available.u16(6, bigEndian: bigEndian),
      let link = available.u32(20, bigEndian: bigEndian)
    else {
      damaged(.truncated, "pcap file header cut short")
      return
    }
    guard major == 2 else {
      damaged(.malformed, "pcap version \(major).\(minor) is not 2.x")
      return
    }
    // Bits 16-25 are reserved and must be zero (libpcap refuses such files too).
    guard link & 0x03FF_0000 == 0 else {
      damaged(.malformed, "pcap link-type field has reserved bits set")
      return
    }
    pcapLinkType = LinkType(rawValue: link & 0xFFFF)
    recorded.notes.append(
      "pcap \(bigEndian ? "big" : "little")-endian, \(pcapNanoseconds ? "nanosecond" : "microsecond") timestamps, link type \(pcapLinkType)"
    )
    consume(24)
  }

  // MARK: - Packets

  /// The next packet, or `nil` at the end of the file (or at damage that ends it).
  public func next() throws(PcapError) -> CapturedPacket? {
    if finished { return nil }
    switch format {
    case .pcap: return try nextPcap()
    case .pcapng: return try nextPcapng()
    }
  }

  /// A pcap record: 16-byte header (seconds, µs or ns, captured length, original length) and
  /// the captured bytes.
  func nextPcap() throws(PcapError) -> CapturedPacket? {
    guard try ensure(16) else {
      if end > start { damaged(.truncated, "file ends inside a record header") } else { finished = true }
      return nil
    }
    let header = available
    guard let seconds = header.u32(0, bigEndian: bigEndian),
      let fraction = header.u32(4, bigEndian: bigEndian),
      let captured32 = header.u32(8, bigEndian: bigEndian),
      let original32 = header.u32(12, bigEndian: bigEndian)
    else { return nil }
    let captured = Int(captured32)
    guard captured <= Self.maxRecordLength else {
      damaged(.malformed, "record claims \(captured) captured bytes (more than \(Self.maxRecordLength))")
      return nil
    }
    guard try ensure(16 + captured) else {
      damaged(.truncated, "file ends inside a packet of \(captured) bytes")
      return nil
    }
    packetNumber += 1
    recordCount += 1
    let offset = fileOffsetOfStart
    let fractionNanos = pcapNanoseconds ? Int64(fraction) : Int64(fraction) &* 1000
    let data = ByteView(UnsafeRawBufferPointer(rebasing: buffer[(start + 16)..<(start + 16 + captured)]))
    consume(16 + captured)
    return CapturedPacket(
      timestamp: Int64(seconds) &* 1_000_000_000 &+ fractionNanos, linkType: pcapLinkType,
      interface: 0, originalLength: Int(original32), data: data, number: packetNumber,
      fileOffset: offset)
  }

  /// pcapng blocks: type, total length, body, total length again (all in the section's byte
  /// order, which the section header's byte-order magic 0x1A2B3C4D sets).
  func nextPcapng() throws(PcapError) -> CapturedPacket? {
    while true {
      guard try ensure(12) else {
        if end > start { damaged(.truncated, "file ends inside a block header") } else { finished = true }
        return nil
      }
      guard let type = available.u32(0, bigEndian: false) else { return nil }
      if type == 0x0A0D_0D0A {
        // A section header sets the byte order before its own length can be read.
        guard let bom = available.u32(8, bigEndian: false) else { return nil }
        if bom == 0x1A2B_3C4D {
          bigEndian = false
        } else if bom == 0x4D3C_2B1A {
          bigEndian = true
        } else {
          damaged(.malformed, "section header with unknown byte-order magic")
          return nil
        }
      } else if sectionCount == 0 {
        damaged(.malformed, "pcapng data before the first section header")
        return nil
      }
      guard let length32 = available.u32(4, bigEndian: bigEndian),
        let blockType = available.u32(0, bigEndian: bigEndian)
      else { return nil }
      let length = Int(length32)
      guard length >= 12, length % 4 == 0, length <= Self.maxRecordLength + 64 else {
        damaged(.malformed, "block of type \(blockType) with impossible length \(length)")
        return nil
      }
      guard try ensure(length) else {
        damaged(.truncated, "file ends inside a block of \(length) bytes")
        return nil
      }
      let block = available.prefix(length)
      guard block.u32(length - 4, bigEndian: bigEndian) == length32 else {
        damaged(.malformed, "block of type \(blockType): trailing length differs from leading length")
        return nil
      }
      let body = block.slice(8, length - 12) ?? block.prefix(0)
      let offset = fileOffsetOfStart
      var packet: CapturedPacket?
      switch blockType {
      case 0x0A0D_0D0A:
        guard sectionHeader(body) else { return nil }
      case 1:
        interfaceDescription(body)
      case 6:
        packet = enhancedPacket(body, offset: offset)
      case 3:
        packet = simplePacket(body, offset: offset)
      case 2:
        packet = obsoletePacket(body, offset: offset)
      case 5:
        interfaceStatistics(body)
      default:
        break  // Name resolution, journal, custom and unknown blocks carry nothing we use.
      }
      if finished { return nil }
      if var packet {
        packetNumber += 1
        recordCount += 1
        packet.number = packetNumber
        consume(length)
        return packet
      }
      consume(length)
    }
  }

  /// Section header body: byte-order magic, major, minor, section length (-1: unknown), options.
  func sectionHeader(_ body: ByteView) -> Bool {
    guard let major = body.u16(4, bigEndian: bigEndian), let minor = body.u16(6, bigEndian: bigEndian)
    else {
      damaged(.truncated, "section header too short")
      return false
    }
    guard major == 1 else {
      damaged(.malformed, "pcapng section version \(major).\(minor) is not 1.x")
      return false
    }
    if let options = body.suffix(from: 16), !optionsWellFormed(options) {
      damaged(.malformed, "section header option runs past its block")
      return false
    }
    sectionCount += 1
    interfaceBase += interfaces.count
    interfaces.removeAll(keepingCapacity: true)
    if sectionCount == 2 { recorded.notes.append("several pcapng sections") }
    return true
  }

  /// Whether an option list is a sequence of (code, length, value padded to 4) that fits.
  func optionsWellFormed(_ options: ByteView) -> Bool {
    var at = 0
    while options.has(at, 4) {
      guard let code = options.u16(at, bigEndian: bigEndian),
        let length = options.u16(at + 2, bigEndian: bigEndian)
      else { return false }
      if code == 0 { return true }
      let padded = (Int(length) + 3) & ~3
      guard options.has(at + 4, padded) else { return false }
      at += 4 + padded
    }
    return true
  }

  /// Calls `body` for each option (code, value) until `opt_endofopt` or the end.
  func forEachOption(_ options: ByteView, _ body: (UInt16, ByteView) -> Void) {
    var at = 0
    while options.has(at, 4) {
      guard let code = options.u16(at, bigEndian: bigEndian),
        let length = options.u16(at + 2, bigEndian: bigEndian)
      else { return }
      if code == 0 { return }
      guard let value = options.slice(at + 4, Int(length)) else { return }
      body(code, value)
      at += 4 + ((Int(length) + 3) & ~3)
    }
  }

  /// Interface description: link type (16), reserved (16), snaplen (32), options
  /// (`if_tsresol` = 9, `if_tsoffset` = 14).
  func interfaceDescription(_ body: ByteView) {
    guard let link = body.u16(0, bigEndian: bigEndian), let snap = body.u32(4, bigEndian: bigEndian)
    else {
      damaged(.truncated, "interface description too short")
      return
    }
    var interface = Interface(linkType: LinkType(rawValue: UInt32(link)), snapLength: Int(snap))
    if let options = body.suffix(from: 8) {
      forEachOption(options) { code, value in
        if code == 9, let resolution = value.u8(0) {
          interface.binary = resolution & 0x80 != 0
          interface.exponent = Int(resolution & 0x7F)
        } else if code == 14, let raw = value.u64(0) {
          let host = bigEndian ? raw : raw.byteSwapped
          interface.offsetSeconds = Int64(bitPattern: host)
        }
      }
    }
    if interfaces.count < 65536 { interfaces.append(interface) }
  }

  /// Interface statistics: interface id, timestamp, options (`isb_ifdrop` = 5).
  func interfaceStatistics(_ body: ByteView) {
    guard let options = body.suffix(from: 12) else { return }
    forEachOption(options) { code, value in
      if code == 5, let raw = value.u64(0) {
        droppedByInterfaces &+= bigEndian ? raw : raw.byteSwapped
      }
    }
  }

  /// A timestamp in the interface's units as nanoseconds since the epoch.
  func nanoseconds(_ units: UInt64, interface: Interface) -> Int64 {
    var nanos: UInt64
    if interface.binary {
      let shift = UInt64(min(interface.exponent, 63))
      let whole = units >> shift
      let fraction = units & ((1 << shift) &- 1)
      nanos = whole &* 1_000_000_000 &+ (fraction &* 1_000_000_000) >> shift
    } else if interface.exponent <= 9 {
      var scale: UInt64 = 1
      for _ in interface.exponent..<9 { scale &*= 10 }
      nanos = units &* scale
    } else {
      var scale: UInt64 = 1
      for _ in 9..<min(interface.exponent, 28) { scale &*= 10 }
      nanos = scale == 0 ? 0 : units / scale
    }
    return Int64(bitPattern: nanos) &+ interface.offsetSeconds &* 1_000_000_000
  }

  func interfaceOrIssue(_ id: Int) -> Interface? {
    guard id < interfaces.count else {
      damaged(.malformed, "packet names interface \(id), but the section describes \(interfaces.count)")
      return nil
    }
    return interfaces[id]
  }

  /// Enhanced packet: interface id, timestamp high, low, captured length, original length, data
  /// padded to 4, options.
  func enhancedPacket(_ body: ByteView, offset: Int) -> CapturedPacket? {
    guard let id = body.u32(0, bigEndian: bigEndian) else {
      damaged(.truncated, "enhanced packet block too short")
      return nil
    }
    return timestampedPacket(body, offset: offset, interface: Int(id), name: "enhanced packet")
  }

  /// Obsolete packet block: interface id (16), drops (16), then the enhanced packet's layout.
  func obsoletePacket(_ body: ByteView, offset: Int) -> CapturedPacket? {
    guard let id = body.u16(0, bigEndian: bigEndian) else {
      damaged(.truncated, "packet block too short")
      return nil
    }
    return timestampedPacket(body, offset: offset, interface: Int(id), name: "packet")
  }

  /// The layout both blocks share after the interface id: timestamp high, low (offsets 4 and
  /// 8), captured length, original length, data at 20.
  func timestampedPacket(_ body: ByteView, offset: Int, interface id: Int, name: String)
    -> CapturedPacket?
  {
    guard let high = body.u32(4, bigEndian: bigEndian), let low = body.u32(8, bigEndian: bigEndian),
      let captured = body.u32(12, bigEndian: bigEndian), let original = body.u32(16, bigEndian: bigEndian)
    else {
      damaged(.truncated, "\(name) block too short")
      return nil
    }
    guard let data = body.slice(20, Int(captured)) else {
      damaged(.malformed, "\(name)'s captured length \(captured) runs past its block")
      return nil
    }
    guard let interface = interfaceOrIssue(id) else { return nil }
    let units = UInt64(high) << 32 | UInt64(low)
    return CapturedPacket(
      timestamp: nanoseconds(units, interface: interface), linkType: interface.linkType,
      interface: interfaceBase + id, originalLength: Int(original), data: data, number: 0,
      fileOffset: offset)
  }

  /// Simple packet: original length, then data up to the block's end (or interface 0's snaplen).
  func simplePacket(_ body: ByteView, offset: Int) -> CapturedPacket? {
    guard let original = body.u32(0, bigEndian: bigEndian) else {
      damaged(.truncated, "simple packet block too short")
      return nil
    }
    guard let interface = interfaceOrIssue(0) else { return nil }
    var captured = min(Int(original), body.count - 4)
    if interface.snapLength > 0 { captured = min(captured, interface.snapLength) }
    let data = body.slice(4, captured) ?? body.prefix(0)
    // Simple packets carry no timestamp: they sort as "unknown", at time 0.
    return CapturedPacket(
      timestamp: 0, linkType: interface.linkType, interface: interfaceBase, originalLength: Int(original),
      data: data, number: 0, fileOffset: offset)
  }

  /// Counts a per-packet problem; the message is built only while examples are kept, so
  /// counting stays allocation-free.
  public func record(_ kind: InputIssueKind, packet: Int, _ reason: StaticString) {
    if recorded.examples.count < InputSummary.exampleLimit {
      recorded.record(InputIssue(kind: kind, line: packet, message: reason.description))
    } else {
      switch kind {
      case .truncated: recorded.truncated += 1
      case .malformed: recorded.malformed += 1
      case .unsupported: recorded.unsupported += 1
      }
    }
  }

  /// Adds a note to the input's summary.
  public func note(_ text: String) { recorded.notes.append(text) }
}
