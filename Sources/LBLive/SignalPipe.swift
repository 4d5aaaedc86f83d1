#if canImport(Glibc)
  import Glibc
#endif

/// The write end of the one pipe the signal handler writes to; set once by `SignalPipe.install`
/// before the handlers are, and only read afterwards.
nonisolated(unsafe) private var signalPipeWriteEnd: Int32 = -1
/// The last signal caught (0 before any), read after the loop ends.
nonisolated(unsafe) private var lastSignal: Int32 = 0

/// Turns SIGINT and SIGTERM into a readable descriptor (the self-pipe trick), so a `poll` loop
/// can end cleanly: the handler only stores the number and writes one byte, which is
/// async-signal-safe; all the work happens in the loop.
public enum SignalPipe {
  /// Installs handlers for `signals` and returns the descriptor that becomes readable when one
  /// arrives. Call once per process.
  public static func install(_ signals: [Int32] = [SIGINT, SIGTERM]) -> Int32? {
    var ends: [Int32] = [0, 0]
    guard pipe(&ends) == 0 else { return nil }
    for end in ends {
      _ = fcntl(end, F_SETFD, FD_CLOEXEC)
      _ = fcntl(end, F_SETFL, O_NONBLOCK)
    }
    signalPipeWriteEnd = ends[1]
    for number in signals {
      var action = sigaction()
      action.__sigaction_handler.sa_handler = { number in
        lastSignal = number
        var byte: UInt8 = 1
        _ = write(signalPipeWriteEnd, &byte, 1)
      }
      sigemptyset(&action.sa_mask)
      action.sa_flags = SA_RESTART
      sigaction(number, &action, nil)
    }
    // A parent may have left them blocked (a blocked mask survives exec): unblock them here, so
    // threads started afterwards inherit the unblocked mask.
    var unblocked = sigset_t()
    sigemptyset(&unblocked)
    for number in signals { sigaddset(&unblocked, number) }
    pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
    return ends[0]
  }

  /// The signal that ended the wait, if one did.
  public static var caught: Int32? { lastSignal == 0 ? nil : lastSignal }
}
