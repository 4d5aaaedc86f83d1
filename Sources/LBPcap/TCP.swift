extension PacketDecoder {
  /// TCP (RFC 9293 §3.1):
  ///
  ///     0 source port   2 destination port   4 sequence number   8 acknowledgment number
  ///     12 data offset (4 bits) / reserved    13 flags   14 window   16 checksum   18 urgent
  ///     20 options (data offset × 4 − 20 bytes)
  ///
  /// Options read: MSS (kind 2, RFC 9293), window scale (3), SACK permitted (4, RFC 2018) and
  /// timestamps (8, RFC 7323); the kinds' order is kept for fingerprints. An
  /// option list that runs past the header ends option parsing; the segment still counts.
  mutating func tcp(_ bytes: ByteView, declaredLength: Int) -> DecodeOutcome {
    guard let sp = bytes.u16(0), let dp = bytes.u16(2), let seq = bytes.u32(4),
      let ack = bytes.u32(8), let offsetByte = bytes.u8(12), let flags = bytes.u8(13),
      let window = bytes.u16(14), let checksum = bytes.u16(16)
    else {
      if packet.firstFragment { return .ip }
      return .issue(.truncated, "TCP header cut short")
    }
    let headerLength = Int(offsetByte >> 4) * 4
    guard headerLength >= 20 else { return .issue(.malformed, "TCP data offset below 20 bytes") }
    guard headerLength <= declaredLength || packet.firstFragment else {
      return .issue(.malformed, "TCP data offset beyond the segment")
    }
    packet.hasTransport = true
    packet.sourcePort = sp
    packet.destinationPort = dp
    packet.seq = seq
    packet.ack = ack
    packet.tcpFlags = flags
    packet.window = window
    packet.l4Checksum = checksum
    packet.payloadLength = packet.fragment ? 0 : declaredLength - headerLength
    guard let options = bytes.slice(20, headerLength - 20) else {
      packet.payload = bytes.prefix(0)
      return .issue(.truncated, "TCP options cut short")
    }
    packet.payload = bytes.suffix(from: headerLength) ?? bytes.prefix(0)
    tcpOptions(options)
    return .ip
  }

  /// Walks the TCP options: kinds 0 (end) and 1 (no-op) are one byte; others are
  /// (kind, length ≥ 2, value).
  mutating func tcpOptions(_ options: ByteView) {
    // Linux puts no-op, no-op, timestamps on every segment after the handshake: that layout is
    // taken in one compare (the walk below reads the same a byte at a time, which was a quarter
    // of the decoder's instructions).
    if options.count == 12, options.u32(0) == 0x0101_080A, let value = options.u32(4),
      let echo = options.u32(8)
    {
      packet.tcpOptionKinds |= 0x08_0101
      packet.hasTimestamp = true
      packet.tsValue = value
      packet.tsEcho = echo
      return
    }
    var at = 0
    var shift: UInt64 = 0
    while let kind = options.u8(at) {
      if shift < 64 {
        packet.tcpOptionKinds |= UInt64(kind) << shift
        shift += 8
      }
      if kind == 0 { return }
      if kind == 1 {
        at += 1
        continue
      }
      guard let length = options.u8(at + 1), length >= 2, options.has(at, Int(length)) else { return }
      switch (kind, length) {
      case (2, 4):
        packet.mss = options.u16(at + 2) ?? 0
      case (4, 2):
        packet.sackPermitted = true
      case (3, 3):
        packet.windowScale = options.u8(at + 2) ?? 0xFF
      case (8, 10):
        if let value = options.u32(at + 2), let echo = options.u32(at + 6) {
          packet.hasTimestamp = true
          packet.tsValue = value
          packet.tsEcho = echo
        }
      default:
        break
      }
      at += Int(length)
    }
  }
}
