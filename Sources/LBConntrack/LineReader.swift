import LBCore
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// Reads a file descriptor in fixed-size chunks and hands out one line at a time, without
/// loading the whole input. A line is lent to the callback as bytes without its terminator
/// (`\n`, or `\r\n`) and is valid only during the call.
///
/// Lines longer than `maxLineLength` are not delivered whole: the callback receives the first
/// `maxLineLength` bytes with `overlong == true`, and the rest of that line is skipped.
public struct LineReader {
  /// A chunk small enough to be parsed from the core's cache after `read(2)` copied it there
  /// (1 MiB chunks, as large as the whole L2 here, took about 5% more time on the 1,000,000-entry
  /// benchmark).
  public static let defaultChunkSize = 256 << 10
  /// The default cap on one line. Conntrack lines are a few hundred bytes; a line of this
  /// length is not a conntrack line.
  public static let defaultMaxLineLength = 64 * 1024

  let descriptor: FileDescriptor
  let chunkSize: Int
  let maxLineLength: Int
  let range: Range<Int64>?

  /// Reads `descriptor` from its current position to its end, or, with `range`, exactly those
  /// bytes with positioned reads (`pread(2)`), which leaves the descriptor's offset alone so that
  /// several readers can share one descriptor.
  public init(
    descriptor: FileDescriptor, chunkSize: Int = defaultChunkSize,
    maxLineLength: Int = defaultMaxLineLength, range: Range<Int64>? = nil
  ) {
    self.descriptor = descriptor
    self.chunkSize = max(chunkSize, 4096)
    self.maxLineLength = max(maxLineLength, 16)
    self.range = range
  }

  /// Calls `body` for each line with its 1-based number. Returns the number of bytes read.
  /// The last line needs no terminator. Throws the descriptor's read errors.
  @discardableResult
  public func forEachLine(
    _ body: (_ line: UnsafeRawBufferPointer, _ number: Int, _ overlong: Bool) throws -> Void
  ) throws -> Int {
    // `carry` holds a line that started in an earlier chunk.
    var carry: [UInt8] = []
    carry.reserveCapacity(1024)
    var skippingOverlong = false
    var lineNumber = 0
    var totalBytes = 0
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
    defer { buffer.deallocate() }

    func deliver(_ line: UnsafeRawBufferPointer, overlong: Bool) throws {
      var line = line
      if let last = line.last, last == 0x0D {  // "\r"
        line = UnsafeRawBufferPointer(rebasing: line.dropLast())
      }
      try body(line, lineNumber, overlong)
    }

    var offset = range?.lowerBound ?? 0
    // A regular file is read up to its size at the start: one still being written ends there
    // instead of being followed for ever. Pipes, FIFOs and /proc files (whose size says 0) are
    // read to their end.
    var left = Int.max
    var status = stat()
    if range == nil, fstat(descriptor.rawValue, &status) == 0, status.st_mode & S_IFMT == S_IFREG,
      status.st_size > 0
    {
      let position = lseek(descriptor.rawValue, 0, SEEK_CUR)
      if position >= 0 { left = max(0, Int(status.st_size) - Int(position)) }
    }
    while true {
      let count: Int
      if let range {
        let wanted = Int(min(Int64(chunkSize), range.upperBound - offset))
        if wanted <= 0 { break }
        count = try descriptor.read(
          fromAbsoluteOffset: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<wanted]))
        offset += Int64(count)
      } else {
        if left <= 0 { break }
        count = try descriptor.read(
          into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(chunkSize, left)]))
        left -= count
      }
      if count == 0 { break }
      totalBytes += count
      guard let base = buffer.baseAddress else { break }
      var start = 0
      while start < count {
        let remaining = count - start
        let found = memchr(base + start, 0x0A, remaining)
        let end = found.map { base.distance(to: $0) } ?? count
        let piece = UnsafeRawBufferPointer(start: base + start, count: end - start)
        let complete = found != nil
        if skippingOverlong {
          if complete { skippingOverlong = false }
        } else if carry.isEmpty && complete {
          lineNumber += 1
          if piece.count > maxLineLength {
            try deliver(UnsafeRawBufferPointer(rebasing: piece[..<maxLineLength]), overlong: true)
          } else {
            try deliver(piece, overlong: false)
          }
        } else {
          let room = maxLineLength - carry.count
          if piece.count > room {
            carry.append(contentsOf: piece[..<(piece.startIndex + room)])
            lineNumber += 1
            try carry.withUnsafeBytes { try deliver($0, overlong: true) }
            carry.removeAll(keepingCapacity: true)
            skippingOverlong = !complete
          } else {
            carry.append(contentsOf: piece)
            if complete {
              lineNumber += 1
              try carry.withUnsafeBytes { try deliver($0, overlong: false) }
              carry.removeAll(keepingCapacity: true)
            }
          }
        }
        start = end + 1
      }
    }
    if !carry.isEmpty {
      lineNumber += 1
      try carry.withUnsafeBytes { try deliver($0, overlong: false) }
    }
    return totalBytes
  }
}
