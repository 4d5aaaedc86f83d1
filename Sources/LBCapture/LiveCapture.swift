import CPcap

#if canImport(Glibc)
  import Glibc
#endif

/// What to capture and how.
public struct CaptureOptions: Sendable {
  /// Interface names, or `["any"]` for every interface (LINUX_SLL2 frames that name theirs).
  public var interfaces: [String] = ["any"]
  /// A `pcap-filter(7)` expression applied in the kernel, or `nil` for every packet.
  public var filter: String?
  /// Bytes kept of each packet; 512 keeps the headers and the start of plaintext HTTP.
  public var snaplen = 512
  /// The kernel ring buffer per interface, in bytes (`pcap_set_buffer_size`).
  public var bufferBytes = 32 << 20

  public init() {}
}

/// Why `LiveCapture.run` returned.
public enum CaptureEnd: Sendable, Equatable {
  /// SIGINT or SIGTERM arrived on the stop descriptor.
  case signal
  /// The deadline (`--duration`) passed.
  case deadline
  /// The packet limit (`--packets`) was reached.
  case packetLimit
}

/// A live capture through libpcap on one or more interfaces, written as it arrives.
///
/// Owns one `pcap_t` per interface (`pcap_create`, `pcap_set_snaplen`,
/// `pcap_set_immediate_mode`, `pcap_set_buffer_size`, nanosecond timestamps, `pcap_activate`,
/// `pcap_setfilter`, `pcap_setnonblock`); `deinit` closes them (`pcap_close`). The loop polls
/// every handle's `pcap_get_selectable_fd` together with a stop descriptor (the SignalPipe), so
/// a signal, the deadline or the packet limit ends it between two batches; the kernel's buffer
/// is then drained into the writer before `run` returns, so nothing captured is lost. Packet
/// bytes lent by libpcap are copied into the writer inside the callback and never kept.
public final class LiveCapture {
  /// One interface per handle, in handle order (the pcapng interface ids).
  public let interfaces: [CaptureInterface]
  let handles: [OpaquePointer]

  /// Opens and activates every interface; throws a `.permissionDenied` error without
  /// CAP_NET_RAW, before any file is created.
  public init(_ options: CaptureOptions) throws(CaptureError) {
    var handles: [OpaquePointer] = []
    var interfaces: [CaptureInterface] = []
    do {
      for name in options.interfaces {
        let handle = try Self.open(name, options: options)
        handles.append(handle)
        interfaces.append(
          CaptureInterface(
            name: name, linkType: UInt16(truncatingIfNeeded: pcap_datalink(handle)),
            snaplen: UInt32(truncatingIfNeeded: pcap_snapshot(handle))))
      }
    } catch {
      for handle in handles { pcap_close(handle) }
      throw error
    }
    self.handles = handles
    self.interfaces = interfaces
  }

  deinit {
    for handle in handles { pcap_close(handle) }
  }

  static func open(_ name: String, options: CaptureOptions) throws(CaptureError) -> OpaquePointer {
    var errorText = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
    guard let handle = pcap_create(name, &errorText) else {
      throw CaptureError(
        code: .noSuchInterface, path: name, reason: "cannot open: \(Self.text(errorText))",
        hint: "list interfaces with `ip link`")
    }
    pcap_set_snaplen(handle, Int32(options.snaplen))
    pcap_set_promisc(handle, 0)
    pcap_set_immediate_mode(handle, 1)
    pcap_set_buffer_size(handle, Int32(clamping: options.bufferBytes))
    pcap_set_tstamp_precision(handle, Int32(PCAP_TSTAMP_PRECISION_NANO))
    let status = pcap_activate(handle)
    if status < 0 {
      let message = String(cString: pcap_geterr(handle))
      let detail = message.isEmpty ? String(cString: pcap_statustostr(status)) : message
      pcap_close(handle)
      switch status {
      case PCAP_ERROR_PERM_DENIED:
        throw CaptureError.permission(name, detail)
      case PCAP_ERROR_NO_SUCH_DEVICE:
        throw CaptureError(
          code: .noSuchInterface, path: name, reason: "no such interface (\(detail))",
          hint: "list interfaces with `ip link`, or capture on `any`")
      default:
        throw CaptureError(
          code: .capture, path: name, reason: "cannot start capturing: \(detail)",
          hint: "check the interface is up, or capture on `any`")
      }
    }
    // On `any`, prefer LINUX_SLL2 (as tcpdump does): each frame names its interface.
    if name == "any" { _ = pcap_set_datalink(handle, 276) }
    if let filter = options.filter {
      var program = bpf_program()
      guard pcap_compile(handle, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
        let message = String(cString: pcap_geterr(handle))
        pcap_close(handle)
        throw CaptureError(
          code: .badFilter, path: nil, reason: "--filter '\(filter)' does not compile: \(message)",
          hint: "see `man pcap-filter` for the syntax")
      }
      let set = pcap_setfilter(handle, &program)
      pcap_freecode(&program)
      guard set == 0 else {
        let message = String(cString: pcap_geterr(handle))
        pcap_close(handle)
        throw CaptureError(
          code: .capture, path: name, reason: "cannot set the filter: \(message)", hint: "")
      }
    }
    guard pcap_setnonblock(handle, 1, &errorText) == 0 else {
      pcap_close(handle)
      throw CaptureError(
        code: .capture, path: name, reason: "cannot make the capture non-blocking: \(Self.text(errorText))",
        hint: "")
    }
    return handle
  }

  /// `pcap_stats` per interface: received, dropped by the kernel's buffer, dropped by the
  /// interface. Cumulative since activation.
  public func counters() -> [CaptureCounters] {
    handles.map { handle in
      var stats = pcap_stat()
      guard pcap_stats(handle, &stats) == 0 else { return CaptureCounters() }
      return CaptureCounters(
        received: UInt64(stats.ps_recv), droppedByKernel: UInt64(stats.ps_drop),
        droppedByInterface: UInt64(stats.ps_ifdrop))
    }
  }

  /// What the callback needs: the writer, the handle's interface id, the packet budget and the
  /// first write error (a C callback cannot throw).
  final class Sink {
    let writer: PcapngWriter
    var interface = 0
    var remaining: Int?
    var error: CaptureError?

    init(writer: PcapngWriter, remaining: Int?) {
      self.writer = writer
      self.remaining = remaining
    }
  }

  /// Captures into `writer` until `stop` becomes readable (a signal), `deadline` passes or
  /// `maxPackets` have been written; then drains the kernel's buffers into the writer. Does not
  /// close the writer. `onTick` runs about five times a second (for progress).
  public func run(
    writer: PcapngWriter, stop: Int32?, deadline: ContinuousClock.Instant?, maxPackets: Int?,
    onTick: () -> Void = {}
  ) throws(CaptureError) -> CaptureEnd {
    let sink = Sink(writer: writer, remaining: maxPackets)
    let context = Unmanaged.passUnretained(sink).toOpaque().assumingMemoryBound(to: UInt8.self)
    var fds = handles.map { pollfd(fd: pcap_get_selectable_fd($0), events: Int16(POLLIN), revents: 0) }
    if let stop { fds.append(pollfd(fd: stop, events: Int16(POLLIN), revents: 0)) }
    let clock = ContinuousClock()
    var lastTick = clock.now
    var end: CaptureEnd?
    while end == nil {
      var wait: Int32 = 200
      if let deadline {
        let left = clock.now.duration(to: deadline).components
        let ms = left.seconds * 1000 + left.attoseconds / 1_000_000_000_000_000
        wait = Int32(max(0, min(Int64(wait), ms)))
      }
      let ready = poll(&fds, nfds_t(fds.count), wait)
      if ready < 0 && errno != EINTR {
        throw CaptureError(
          code: .capture, path: nil, reason: "poll failed: \(String(cString: strerror(errno)))", hint: "")
      }
      try dispatchAll(sink, context)
      if sink.remaining == 0 { end = .packetLimit }
      if let stop, fds[fds.count - 1].revents != 0 {
        var byte: UInt8 = 0
        _ = read(stop, &byte, 1)
        end = .signal
      }
      if let deadline, clock.now >= deadline { end = end ?? .deadline }
      if clock.now - lastTick >= .milliseconds(200) || end != nil {
        lastTick = clock.now
        try writer.tick(nowNs: Self.realtimeNs())
        onTick()
      }
    }
    if end != .packetLimit { try dispatchAll(sink, context) }
    return end ?? .deadline
  }

  /// Reads what every handle holds now (non-blocking), batch by batch, bounded.
  func dispatchAll(_ sink: Sink, _ context: UnsafeMutablePointer<UInt8>) throws(CaptureError) {
    for (index, handle) in handles.enumerated() {
      sink.interface = index
      for _ in 0..<10_000 {
        if sink.remaining == 0 { return }
        let got = pcap_dispatch(handle, Int32(clamping: sink.remaining ?? -1), Self.callback, context)
        if let error = sink.error { throw error }
        if got < 0 {
          if got == PCAP_ERROR_BREAK { break }
          throw CaptureError(
            code: .capture, path: interfaces[index].name,
            reason: "capture failed: \(String(cString: pcap_geterr(handle)))",
            hint: "the files written so far are complete")
        }
        if got == 0 { break }
      }
    }
  }

  /// Copies one packet into the writer; libpcap's header and bytes are only lent for the call.
  static let callback: pcap_handler = { user, header, bytes in
    guard let user, let header, let bytes else { return }
    let sink = Unmanaged<Sink>.fromOpaque(UnsafeRawPointer(user)).takeUnretainedValue()
    guard sink.error == nil, sink.remaining != 0 else { return }
    let h = header.pointee
    // Nanosecond precision was asked for, so tv_usec holds nanoseconds.
    let ns = UInt64(max(0, h.ts.tv_sec)) &* 1_000_000_000 &+ UInt64(max(0, h.ts.tv_usec))
    do throws(CaptureError) {
      try sink.writer.write(
        interface: sink.interface, timestampNs: ns, originalLength: Int(h.len),
        data: UnsafeRawBufferPointer(start: bytes, count: Int(h.caplen)))
    } catch {
      sink.error = error
    }
    if let remaining = sink.remaining { sink.remaining = remaining - 1 }
  }

  static func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  static func realtimeNs() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_REALTIME, &t)
    return UInt64(max(0, t.tv_sec)) &* 1_000_000_000 &+ UInt64(max(0, t.tv_nsec))
  }
}
