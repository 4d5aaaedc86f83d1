import LBCore
import LBLive
import SystemPackage

#if canImport(Glibc)
  import Glibc
#endif

/// Exit code 130 on SIGINT or SIGTERM, with one line on standard error and nothing left
/// half-written.
///
/// The signal handler is `SignalPipe`'s: it stores the signal number and writes one byte to a
/// pipe, nothing else (async-signal-safe). A thread started here waits on that pipe; when the
/// byte arrives it takes `InterruptCleanup`'s lock (so no report or bundle can be renamed into
/// place meanwhile), ends the process groups of running tools, removes the registered scratch
/// files and directories, prints the line and leaves with `_exit(130)`. The main thread may be
/// anywhere, even blocked reading a FIFO that never ends: it never sees the signal.
///
/// `watch` and `capture` end normally on their first signal (their loop polls the same pipe);
/// they call `watch(_:output:)` after the loop, so a second signal while they read back and
/// write the report interrupts like it does for every other command.
enum Interrupt {
  static let exitCode: Int32 = 130

  /// The pipe the waiting thread polls; set before the thread starts.
  nonisolated(unsafe) private static var pipe: Int32 = -1
  /// `--output`, for the message; set before the thread starts.
  nonisolated(unsafe) private static var output: String?

  /// Installs the SIGINT and SIGTERM handlers and starts the waiting thread (every command that
  /// reads or writes files calls this first).
  static func install(output: String?) {
    guard let fd = SignalPipe.install() else {
      FileDescriptor.standardError.writeLine(
        "lbscope: cannot install signal handlers; Ctrl-C ends lbscope at once")
      return
    }
    watch(fd, output: output)
  }

  /// Starts the waiting thread on a `SignalPipe` descriptor already installed, after emptying
  /// it of the signals that have been handled.
  static func watch(_ fd: Int32, output: String?) {
    var byte: UInt8 = 0
    while read(fd, &byte, 1) == 1 {}
    pipe = fd
    Self.output = output
    var thread = pthread_t()
    let started = pthread_create(
      &thread, nil,
      { _ in
        Interrupt.waitAndExit()
      }, nil)
    if started == 0 { pthread_detach(thread) }
  }

  /// Waits for a signal byte, then cleans up and exits with 130.
  private static func waitAndExit() -> Never {
    var fds = [pollfd(fd: pipe, events: Int16(POLLIN), revents: 0)]
    while true {
      let ready = poll(&fds, 1, -1)
      if ready == 1 && fds[0].revents & Int16(POLLIN) != 0 { break }
      if ready == 1 {
        // The pipe is gone (POLLNVAL, POLLERR, POLLHUP): sleep rather than spin on it. The
        // handler's byte can no longer reach this thread, so an interrupt is not cleaned up.
        while true { pause() }
      }
    }
    let _: Never = InterruptCleanup.withLockedState { state in
      removeScratch(&state)
      let name = SignalPipe.caught.map(WatchCommand.signalName) ?? "a signal"
      let line: String
      if let output, state.committed.contains(output) {
        line = "lbscope: \(output): interrupted by \(name) after the report was written; it is complete"
      } else if let output {
        line =
          "lbscope: \(output): interrupted by \(name); nothing written there (a file already there is unchanged), run the command again"
      } else {
        line = "lbscope: interrupted by \(name); the report is missing or incomplete, run the command again"
      }
      FileDescriptor.standardError.writeLine(line)
      // Exits holding the lock: nothing can be renamed into place after the cleanup.
      _exit(exitCode)
    }
  }

  /// Ends the registered process groups and removes the registered scratch paths. Called with
  /// the registry locked: on an interrupt, and before any early exit (`Failure.exit`).
  static func removeScratch(_ state: inout InterruptCleanup.State) {
    for group in state.processGroups { kill(-group, SIGTERM) }
    state.processGroups.removeAll()
    for (path, kind) in state.paths {
      switch kind {
      case .file: unlink(path)
      case .directory: removeTree(path, depth: 0)
      }
    }
    state.paths.removeAll()
  }

  /// Removes a directory and what it holds, without following symbolic links; gives up below
  /// 32 levels (lbscope's own scratch trees are two deep).
  static func removeTree(_ path: String, depth: Int) {
    guard depth < 32, let directory = opendir(path) else {
      unlink(path)
      return
    }
    var names: [String] = []
    while let entry = readdir(directory) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." { names.append(name) }
    }
    closedir(directory)
    for name in names {
      let full = path + "/" + name
      var status = stat()
      guard lstat(full, &status) == 0 else { continue }
      if status.st_mode & S_IFMT == S_IFDIR { removeTree(full, depth: depth + 1) } else { unlink(full) }
    }
    rmdir(path)
  }
}
