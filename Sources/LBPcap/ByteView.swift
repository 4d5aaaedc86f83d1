/// A read-only view of untrusted bytes: every read is checked against the view's length and
/// returns `nil` past its end, never traps and never reads outside the buffer.
///
/// All packet and capture-file bytes go through this one type (the tcpdump `extract.h` and
/// swift-nio `ByteBuffer` discipline). A view is lent: it is valid only while the buffer it was
/// made from is, which for packets means during one callback.
public struct ByteView {
  @usableFromInline let base: UnsafeRawPointer?
  /// Number of readable bytes.
  public let count: Int

  @inlinable public init(_ buffer: UnsafeRawBufferPointer) {
    base = buffer.baseAddress
    count = buffer.count
  }

  @inlinable init(base: UnsafeRawPointer?, count: Int) {
    self.base = base
    self.count = count
  }

  /// The one bounds check: whether `length` bytes starting at `offset` lie inside the view.
  /// Written so that huge or negative values cannot overflow.
  @inlinable @inline(__always)
  public func has(_ offset: Int, _ length: Int) -> Bool {
    offset >= 0 && length >= 0 && offset <= count && length <= count &- offset
  }

  /// The bytes from `offset` on, or `nil` when `offset` is past the end.
  @inlinable public func suffix(from offset: Int) -> ByteView? {
    guard has(offset, 0) else { return nil }
    // Checked above: offset ≤ count, so the pointer stays within (or one past) the buffer.
    return ByteView(base: base.map { $0 + offset }, count: count &- offset)
  }

  /// `length` bytes from `offset`, or `nil` when they do not all lie inside the view.
  @inlinable public func slice(_ offset: Int, _ length: Int) -> ByteView? {
    guard has(offset, length) else { return nil }
    return ByteView(base: base.map { $0 + offset }, count: length)
  }

  /// The first `length` bytes, or the whole view when it is shorter (clipping to a header's
  /// declared length never grows a view).
  @inlinable public func prefix(_ length: Int) -> ByteView {
    ByteView(base: base, count: max(0, min(count, length)))
  }

  @inlinable @inline(__always)
  public func u8(_ offset: Int) -> UInt8? {
    guard has(offset, 1), let base else { return nil }
    return base.load(fromByteOffset: offset, as: UInt8.self)
  }

  /// Big-endian (network order) 16-bit value.
  @inlinable @inline(__always)
  public func u16(_ offset: Int) -> UInt16? {
    guard has(offset, 2), let base else { return nil }
    return UInt16(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
  }

  /// Big-endian (network order) 32-bit value.
  @inlinable @inline(__always)
  public func u32(_ offset: Int) -> UInt32? {
    guard has(offset, 4), let base else { return nil }
    return UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
  }

  /// Big-endian 64-bit value.
  @inlinable @inline(__always)
  public func u64(_ offset: Int) -> UInt64? {
    guard has(offset, 8), let base else { return nil }
    return UInt64(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
  }

  /// 16-bit value in the given byte order (capture-file headers use the writer's order).
  @inlinable @inline(__always)
  public func u16(_ offset: Int, bigEndian: Bool) -> UInt16? {
    guard has(offset, 2), let base else { return nil }
    let raw = base.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
    return bigEndian ? UInt16(bigEndian: raw) : UInt16(littleEndian: raw)
  }

  /// 32-bit value in the given byte order.
  @inlinable @inline(__always)
  public func u32(_ offset: Int, bigEndian: Bool) -> UInt32? {
    guard has(offset, 4), let base else { return nil }
    let raw = base.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
    return bigEndian ? UInt32(bigEndian: raw) : UInt32(littleEndian: raw)
  }

  /// Whether the bytes at `offset` equal `literal` (ASCII); false when they run past the end.
  @inlinable public func matches(_ literal: StaticString, at offset: Int) -> Bool {
    let n = literal.utf8CodeUnitCount
    guard has(offset, n), let base else { return false }
    let p = literal.utf8Start
    for i in 0..<n where base.load(fromByteOffset: offset &+ i, as: UInt8.self) != p[i] {
      return false
    }
    return true
  }

  /// The view as a raw buffer, for handing to C (the BPF filter) within the lending call.
  @inlinable public var rawBuffer: UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: base, count: count)
  }
}
