import LBPcap

extension DecodedPacket {
  /// An IPv4 TCP segment with no options recorded (by default a 60-byte SYN with TTL 64): what
  /// the flow table needs. Tests set the fields they vary on top.
  static func tcpSegment(
    from source: AddressBits, _ sourcePort: UInt16, to destination: AddressBits, _ destinationPort: UInt16,
    flags: UInt8 = TCPFlags.syn, seq: UInt32, ttl: UInt8 = 64, ipLength: Int = 60
  ) -> DecodedPacket {
    var p = DecodedPacket()
    p.source = source
    p.destination = destination
    p.proto = 6
    p.hasTransport = true
    p.ttl = ttl
    p.ipLength = ipLength
    p.sourcePort = sourcePort
    p.destinationPort = destinationPort
    p.tcpFlags = flags
    p.seq = seq
    return p
  }
}
