#if canImport(Glibc)
  import Glibc
#endif

/// The POSIX ustar format (POSIX.1-1988, `pax` in POSIX.1-2001), the subset a bundle needs:
/// regular files and directories under one top directory.
///
/// ```
/// offset size field             offset size field
///      0  100 name                 257    6 magic "ustar\0"
///    100    8 mode (octal)         263    2 version "00"
///    108    8 uid                  265   32 uname
///    116    8 gid                  297   32 gname
///    124   12 size (octal)         329    8 devmajor
///    136   12 mtime (octal)        337    8 devminor
///    148    8 checksum             345  155 prefix (joined to name with "/")
///    156    1 typeflag ('0' file, '5' directory)
///    157  100 linkname             500   12 padding to 512
/// ```
/// File data follows its header, padded to a multiple of 512; two zero blocks end the archive.
enum Ustar {
  static let block = 512

  /// One header block, or `nil` when the name does not fit.
  static func header(name: String, size: Int, directory: Bool, mtime: Int) -> [UInt8]? {
    var header = [UInt8](repeating: 0, count: block)
    var nameBytes = Array(name.utf8)
    var prefixBytes: [UInt8] = []
    if nameBytes.count > 100 {
      // Split at a "/" so that the prefix holds at most 155 bytes and the name at most 100.
      guard
        let split = nameBytes.indices.last(where: {
          nameBytes[$0] == 0x2F && $0 <= 155 && nameBytes.count - $0 - 1 <= 100
        })
      else { return nil }
      prefixBytes = Array(nameBytes[..<split])
      nameBytes = Array(nameBytes[(split + 1)...])
    }
    func put(_ bytes: [UInt8], at offset: Int) {
      for (i, byte) in bytes.enumerated() { header[offset + i] = byte }
    }
    func octal(_ value: Int, width: Int) -> [UInt8] {
      let digits = String(value, radix: 8)
      return Array((String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits).utf8) + [0]
    }
    put(nameBytes, at: 0)
    put(octal(directory ? 0o755 : 0o644, width: 8), at: 100)
    put(octal(0, width: 8), at: 108)
    put(octal(0, width: 8), at: 116)
    put(octal(size, width: 12), at: 124)
    put(octal(mtime, width: 12), at: 136)
    header[156] = directory ? 0x35 : 0x30
    put(Array("ustar".utf8) + [0], at: 257)
    put(Array("00".utf8), at: 263)
    put(Array("root".utf8), at: 265)
    put(Array("root".utf8), at: 297)
    put(prefixBytes, at: 345)
    // The checksum is computed with its own field as eight spaces.
    for i in 148..<156 { header[i] = 0x20 }
    let sum = header.reduce(0) { $0 + Int($1) }
    put(octal(sum, width: 7) + [0x20], at: 148)
    return header
  }

  /// The parsed fields of a header block.
  struct Entry {
    var name: String
    var size: Int
    var type: UInt8
  }

  /// Parses a header block; `nil` for a bad checksum, a bad number or a missing magic.
  static func parse(_ header: UnsafeRawBufferPointer) -> Entry? {
    guard header.count == block else { return nil }
    guard header[257] == 0x75, header[258] == 0x73, header[259] == 0x74, header[260] == 0x61,
      header[261] == 0x72
    else { return nil }  // "ustar"
    guard let checksum = number(header, 148, 8), let size = number(header, 124, 12) else { return nil }
    var sum = 0
    for i in 0..<block { sum += (148..<156).contains(i) ? 0x20 : Int(header[i]) }
    guard sum == checksum else { return nil }
    func text(_ offset: Int, _ width: Int) -> String {
      let slice = UnsafeRawBufferPointer(rebasing: header[offset..<(offset + width)])
      return String(decoding: slice.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
    let name = text(0, 100)
    let prefix = text(345, 155)
    return Entry(name: prefix.isEmpty ? name : prefix + "/" + name, size: size, type: header[156])
  }

  /// An octal field: digits, optionally padded with spaces or NULs.
  static func number(_ header: UnsafeRawBufferPointer, _ offset: Int, _ width: Int) -> Int? {
    var value = 0
    var digits = 0
    for i in offset..<(offset + width) {
      let byte = header[i]
      if byte >= 0x30 && byte <= 0x37 {
        guard value < (Int.max >> 3) else { return nil }
        value = value << 3 | Int(byte - 0x30)
        digits += 1
      } else if byte == 0 || byte == 0x20 {
        if digits > 0 { break }
      } else {
        return nil
      }
    }
    return digits > 0 ? value : nil
  }
}
