import Foundation
import LBCore
import Testing

@testable import LBPcap

/// A large capture read ahead on another thread gives exactly the packets of the plain read:
/// records cut by chunk boundaries, records longer than a chunk's prefix room, a file cut
/// mid-record.
@Suite struct ReadAheadTests {
  /// A pcap (LINKTYPE_RAW, 16 MB snapshot length) of `sizes.count` records, record `i` filled
  /// with a byte pattern starting at a point derived from `i`.
  func capture(_ sizes: [Int]) -> Data {
    var data = Data()
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    u32(0xa1b2_c3d4)
    u16(2)
    u16(4)
    u32(0)
    u32(0)
    u32(16 << 20)
    u32(101)
    let pattern = (0..<(sizes.max() ?? 0) + 256).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
    for (i, size) in sizes.enumerated() {
      u32(UInt32(1_700_000_000 + i))
      u32(UInt32(i % 1_000_000))
      u32(UInt32(size))
      u32(UInt32(size))
      data.append(contentsOf: pattern[(i % 251)..<(i % 251 + size)])
    }
    return data
  }

  func packets(_ path: String, readAhead: Bool) throws -> (digest: [UInt64], partial: Bool) {
    let reader = try CaptureFileReader(path: path, readAhead: readAhead)
    #expect((reader.readAhead != nil) == readAhead)
    var digest: [UInt64] = []
    while let packet = try reader.next() {
      // FNV-1a over the record's first and last 64 bytes and every 61st byte between (a debug
      // build hashes 80 MB slowly), with its time and length.
      var hash: UInt64 = 0xcbf2_9ce4_8422_2325
      let n = packet.data.count
      var i = 0
      while i < n {
        hash = (hash ^ UInt64(packet.data.u8(i) ?? 0)) &* 0x100_0000_01b3
        i += (i < 64 || i >= n - 64) ? 1 : 61
      }
      digest.append(hash ^ UInt64(bitPattern: packet.timestamp) ^ UInt64(packet.originalLength) << 40)
    }
    return (digest, reader.summary.partial)
  }

  @Test func givesThePacketsOfThePlainRead() throws {
    // About 40 MB: many ordinary records, some over the 1 MiB prefix room, one over a chunk.
    var sizes: [Int] = []
    for i in 0..<20_000 { sizes.append(40 + (i * 7919) % 1500) }
    sizes += [1_500_000, 60, 5_000_000, 70, 2_100_000]
    for i in 0..<15_000 { sizes.append(60 + (i * 104_729) % 9000) }
    let full = capture(sizes)
    #expect(full.count > CaptureFileReader.readAheadMinimum * 2)
    let directory = FileManager.default.temporaryDirectory
    let path = directory.appendingPathComponent("lbscope-readahead-\(UUID().uuidString).pcap").path
    defer { try? FileManager.default.removeItem(atPath: path) }

    try full.write(to: URL(fileURLWithPath: path))
    let ahead = try packets(path, readAhead: true)
    let plain = try packets(path, readAhead: false)
    #expect(ahead.digest.count == sizes.count)
    #expect(ahead.digest == plain.digest)
    #expect(!ahead.partial && !plain.partial)

    // Cut mid-record: both stop at the same packet and say the file is partial.
    try full.prefix(full.count - 5000).write(to: URL(fileURLWithPath: path))
    let cutAhead = try packets(path, readAhead: true)
    let cutPlain = try packets(path, readAhead: false)
    #expect(cutAhead.digest == cutPlain.digest)
    #expect(cutAhead.digest.count == sizes.count - 1)
    #expect(cutAhead.partial && cutPlain.partial)
  }
}
