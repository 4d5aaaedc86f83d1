import CZlib

#if canImport(Glibc)
  import Glibc
#endif

/// A gzip stream writer over zlib (`deflateInit2` with the gzip wrapper, RFC 1952) that owns
/// its `z_stream` and appends compressed bytes to a descriptor.
final class GzipWriter {
  var stream = z_stream()
  let fd: Int32
  var output = [UInt8](repeating: 0, count: 1 << 16)
  var open = false

  init(descriptor: Int32, level: Int32 = 6) throws(BundleError) {
    fd = descriptor
    guard lbscope_deflate_init_gzip(&stream, level) == Z_OK else {
      throw BundleError(path: nil, reason: "zlib deflateInit2 failed", hint: "", category: .unwritableOutput)
    }
    open = true
  }

  deinit { if open { deflateEnd(&stream) } }

  func write(_ bytes: UnsafeRawBufferPointer) throws(BundleError) {
    try run(bytes, flush: Z_NO_FLUSH)
  }

  /// Writes the gzip trailer; the writer is done afterwards.
  func finish() throws(BundleError) {
    try run(UnsafeRawBufferPointer(start: nil, count: 0), flush: Z_FINISH)
    deflateEnd(&stream)
    open = false
  }

  func run(_ bytes: UnsafeRawBufferPointer, flush: Int32) throws(BundleError) {
    // zlib reads next_in but declares it non-const.
    stream.next_in = UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
    stream.avail_in = UInt32(bytes.count)
    while true {
      let (status, produced) = output.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
        stream.next_out = out.baseAddress
        stream.avail_out = UInt32(out.count)
        let status = deflate(&stream, flush)
        return (status, out.count - Int(stream.avail_out))
      }
      if status == Z_STREAM_ERROR {
        throw BundleError(path: nil, reason: "zlib deflate failed", hint: "", category: .unwritableOutput)
      }
      if produced > 0 { try writeAll(fd, output[0..<produced]) }
      if flush == Z_FINISH ? status == Z_STREAM_END : (stream.avail_in == 0 && produced < output.count) {
        return
      }
    }
  }
}

/// A gzip stream reader over zlib (`inflateInit2` accepting only the gzip wrapper) that owns
/// its `z_stream` and reads compressed bytes from a descriptor. Concatenated gzip members are
/// read one after another, as gunzip does.
final class GzipReader {
  var stream = z_stream()
  let fd: Int32
  var input = [UInt8](repeating: 0, count: 1 << 16)
  var inputStart = 0
  var inputEnd = 0
  var open = false
  var ended = false
  let path: String

  init(descriptor: Int32, path: String) throws(BundleError) {
    fd = descriptor
    self.path = path
    guard lbscope_inflate_init_gzip(&stream) == Z_OK else {
      throw BundleError(path: path, reason: "zlib inflateInit2 failed", hint: "", category: .unreadableInput)
    }
    open = true
  }

  deinit { if open { inflateEnd(&stream) } }

  /// Fills `buffer` completely; returns how many bytes it got (fewer only at the end).
  func read(into buffer: UnsafeMutableRawBufferPointer) throws(BundleError) -> Int {
    var filled = 0
    while filled < buffer.count && !ended {
      if inputStart == inputEnd {
        let n = input.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
          if errno == EINTR { continue }
          throw BundleError(
            path: path, reason: "read failed: \(String(cString: strerror(errno)))", hint: "",
            category: .unreadableInput)
        }
        if n == 0 {
          throw BundleError(
            path: path, reason: "the archive ends inside its compressed data",
            hint: "copy the .tar.gz again, or use the bundle directory", category: .unreadableInput)
        }
        inputStart = 0
        inputEnd = n
      }
      let (status, used, produced) = input.withUnsafeMutableBufferPointer { inBuffer -> (Int32, Int, Int) in
        stream.next_in = inBuffer.baseAddress.map { $0 + inputStart }
        stream.avail_in = UInt32(inputEnd - inputStart)
        stream.next_out = (buffer.baseAddress.map { $0 + filled })?.assumingMemoryBound(to: UInt8.self)
        stream.avail_out = UInt32(buffer.count - filled)
        let status = inflate(&stream, Z_NO_FLUSH)
        return (
          status, inputEnd - inputStart - Int(stream.avail_in), buffer.count - filled - Int(stream.avail_out)
        )
      }
      inputStart += used
      filled += produced
      switch status {
      case Z_OK, Z_BUF_ERROR:
        continue
      case Z_STREAM_END:
        // Another gzip member may follow; if not, the data is over.
        if inputStart == inputEnd {
          let n = input.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
          if n <= 0 {
            ended = true
            break
          }
          inputStart = 0
          inputEnd = n
        }
        inflateReset(&stream)
      default:
        throw BundleError(
          path: path, reason: "not gzip data, or damaged (zlib status \(status))",
          hint: "give a bundle directory or the .tar.gz lbscope collect wrote", category: .unrecognizedInput)
      }
    }
    return filled
  }
}

/// Writes every byte or throws.
func writeAll<C: Collection<UInt8>>(_ fd: Int32, _ bytes: C) throws(BundleError) {
  let array = Array(bytes)
  var offset = 0
  while offset < array.count {
    let n = array.withUnsafeBytes { Glibc.write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
    if n < 0 {
      if errno == EINTR { continue }
      throw BundleError(
        path: nil, reason: "write failed: \(String(cString: strerror(errno)))", hint: "check free space",
        category: .unwritableOutput)
    }
    offset += n
  }
}
