import CNetfilterConntrack
import LBConntrack
import LBCore

#if canImport(Glibc)
  import Glibc
#endif

/// A subscription to the kernel's conntrack events: one `[NEW]` when a connection is confirmed
/// and one `[DESTROY]` when it ends (`nfct_open(CONNTRACK, NF_NETLINK_CONNTRACK_NEW |
/// NF_NETLINK_CONNTRACK_DESTROY)`), read with `nfct_catch` on a non-blocking socket so the loop
/// can also wait for a stop signal, a deadline and a display tick.
///
/// When the kernel produces events faster than they are read, the socket's buffer overruns and
/// the kernel drops events (`ENOBUFS`); each overrun is counted in `overruns`, and any overrun
/// makes the observed counts lower bounds.
public final class ConntrackEventStream {
  /// Why `run` returned.
  public enum End: Sendable { case deadline, stopped }

  let handle: ConntrackHandle
  /// Times the kernel reported lost events (`ENOBUFS`) since the subscription began.
  public private(set) var overruns = 0
  /// Events delivered to the caller.
  public private(set) var events = 0

  /// Subscribes; the socket's receive buffer is raised to `receiveBuffer` bytes (with
  /// `SO_RCVBUFFORCE`, which `CAP_NET_ADMIN` allows, else `SO_RCVBUF` up to `rmem_max`) so that
  /// bursts do not overrun it.
  public init(receiveBuffer: Int32 = 16 << 20) throws(NetlinkError) {
    handle = try ConntrackHandle(
      groups: UInt32(NF_NETLINK_CONNTRACK_NEW) | UInt32(NF_NETLINK_CONNTRACK_DESTROY))
    let fd = handle.descriptor
    var size = receiveBuffer
    let length = socklen_t(MemoryLayout<Int32>.size)
    if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, length) != 0 {
      _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, length)
    }
    let flags = fcntl(fd, F_GETFL)
    if flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 {
      throw NetlinkError(operation: "subscribing to", errno: errno)
    }
  }

  /// Delivers events to `onEvent` until `stop` becomes readable (see `SignalPipe`) or
  /// `deadline` passes, calling `onTick` every `tick` (and once more before returning).
  public func run(
    stop: Int32?, deadline: ContinuousClock.Instant?, tick: Duration = .milliseconds(500),
    onEvent: (ConntrackEntry) -> Void, onTick: () -> Void
  ) throws(NetlinkError) -> End {
    let clock = ContinuousClock()
    var nextTick = clock.now.advanced(by: tick)
    var failure: Int32 = 0
    var end = End.stopped
    withoutActuallyEscaping(onEvent) { onEvent in
      handle.withCallback({ type, ct in
        let event: ConntrackEvent
        switch type {
        case NFCT_T_NEW: event = .new
        case NFCT_T_DESTROY: event = .destroy
        default: event = .update
        }
        self.events += 1
        onEvent(ConntrackDecoder.entry(ct, event: event))
      }) {
        var fds = [
          pollfd(fd: handle.descriptor, events: Int16(POLLIN), revents: 0),
          pollfd(fd: stop ?? -1, events: Int16(POLLIN), revents: 0),
        ]
        while true {
          let now = clock.now
          if let deadline, now >= deadline {
            end = .deadline
            break
          }
          if now >= nextTick {
            onTick()
            nextTick = now.advanced(by: tick)
          }
          var wake = nextTick
          if let deadline, deadline < wake { wake = deadline }
          let wait = now.duration(to: wake)
          let milliseconds = max(
            0,
            Int32(
              clamping: wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000)
              + 1)
          let ready = poll(&fds, nfds_t(fds.count), milliseconds)
          if ready < 0 {
            if errno == EINTR { continue }
            failure = errno
            break
          }
          if fds[1].revents != 0 {
            end = .stopped
            break
          }
          if fds[0].revents & Int16(POLLIN | POLLERR) != 0 {
            // nfct_catch reads until the non-blocking socket is drained (EAGAIN).
            if nfct_catch(handle.raw) < 0 {
              switch errno {
              case EAGAIN, EWOULDBLOCK, EINTR: break
              case ENOBUFS: overruns += 1
              default:
                failure = errno
              }
              if failure != 0 { break }
            }
          }
        }
      }
    }
    onTick()
    if failure != 0 { throw NetlinkError(operation: "receiving events from", errno: failure) }
    return end
  }
}
