import CPcap

/// A BPF filter expression (`pcap-filter(7)`) compiled by libpcap, applied to frames read by
/// lbscope's own reader. The only place lbscope calls libpcap for offline files.
///
/// One program is compiled per link type on first use, since a filter's offsets depend on the
/// link-layer header. Each compiled program and its `pcap_t` are owned by a `Program`, whose
/// `deinit` frees them (`pcap_freecode`, `pcap_close`).
public final class BPFFilter {
  /// The expression as given.
  public let expression: String
  var programs: [UInt32: Program] = [:]

  /// One compiled program (`pcap_open_dead` + `pcap_compile`).
  final class Program {
    let handle: OpaquePointer
    var code = bpf_program()

    /// Compiles `expression` for `linkType`; throws with libpcap's message on failure.
    init(expression: String, linkType: UInt32) throws(PcapError) {
      guard let handle = pcap_open_dead(Int32(bitPattern: linkType), 262_144) else {
        throw PcapError(
          code: .badFilter, path: nil, reason: "libpcap cannot open a handle for link type \(linkType)",
          hint: "check libpcap is installed")
      }
      self.handle = handle
      let status = pcap_compile(handle, &code, expression, 1, PCAP_NETMASK_UNKNOWN)
      if status != 0 {
        // deinit runs for this fully initialised object and frees the handle.
        let message = String(cString: pcap_geterr(handle))
        throw PcapError(
          code: .badFilter, path: nil,
          reason: "--filter '\(expression)' does not compile for \(LinkType(rawValue: linkType)): \(message)",
          hint: "see `man pcap-filter` for the syntax")
      }
    }

    deinit {
      pcap_freecode(&code)
      pcap_close(handle)
    }

    /// Runs the program on one frame (`pcap_offline_filter`); the frame is lent for the call.
    func matches(_ frame: ByteView, originalLength: Int) -> Bool {
      var header = pcap_pkthdr()
      header.caplen = UInt32(truncatingIfNeeded: frame.count)
      header.len = UInt32(truncatingIfNeeded: max(originalLength, frame.count))
      guard let base = frame.rawBuffer.baseAddress else { return false }
      return pcap_offline_filter(&code, &header, base.assumingMemoryBound(to: UInt8.self)) != 0
    }
  }

  /// Checks that `expression` compiles (for Ethernet, the most common link type) so a typo is
  /// reported before any file is read.
  public init(expression: String) throws(PcapError) {
    self.expression = expression
    programs[LinkType.ethernet.rawValue] = try Program(
      expression: expression, linkType: LinkType.ethernet.rawValue)
  }

  /// Whether the frame passes the filter. A link type the expression cannot be compiled for
  /// throws: the filter cannot be honoured for that file.
  public func matches(_ packet: CapturedPacket) throws(PcapError) -> Bool {
    let program: Program
    if let known = programs[packet.linkType.rawValue] {
      program = known
    } else {
      program = try Program(expression: expression, linkType: packet.linkType.rawValue)
      programs[packet.linkType.rawValue] = program
    }
    return program.matches(packet.data, originalLength: packet.originalLength)
  }
}
