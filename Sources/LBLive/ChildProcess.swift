import LBCore

#if canImport(Glibc)
  import Glibc
#endif

/// How one child process ended.
public struct ProcessOutcome: Sendable {
  /// The argument vector as given (`argv[0]` the tool's name).
  public var argv: [String]
  /// The program actually run, once found on the fixed search path.
  public var executable: String?
  /// Exit status when the child exited.
  public var status: Int32?
  /// The signal that ended it, when one did (including our own kill on timeout).
  public var signal: Int32?
  /// The child ran past its time box and was killed.
  public var timedOut = false
  /// Wall time from spawn to exit.
  public var duration: Duration = .zero
  /// Standard output when captured (up to `outputLimit` bytes).
  public var output: [UInt8] = []
  /// Bytes the child wrote to standard output (captured or sent to a file).
  public var outputBytes = 0
  /// Standard error, first `errorLimit` bytes.
  public var errorOutput: [UInt8] = []
  /// Why the child could not be started, if it could not.
  public var failure: String?

  public init(argv: [String]) { self.argv = argv }

  /// Ran and exited with status 0.
  public var succeeded: Bool { status == 0 && failure == nil }
}

/// A child started with `posix_spawn` from a fixed argument vector (never a shell), in its own
/// process group, with a fixed environment and standard input from `/dev/null`. Standard output
/// goes to a descriptor the caller owns or is captured; standard error is captured.
public final class ChildProcess {
  /// Where the child's standard output goes.
  public enum Output {
    case capture
    case descriptor(Int32)
  }

  /// The directories searched for a tool named without a slash; `PATH` is not consulted, so
  /// what runs does not depend on the caller's environment.
  public static let searchPath = [
    "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
  ]
  /// The environment every child gets.
  public static let environment = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
  ]

  public let pid: pid_t
  public let argv: [String]
  let executable: String
  var outputPipe: Int32
  var errorPipe: Int32
  var outcome: ProcessOutcome
  let started = ContinuousClock.now
  var output: [UInt8] = []
  var outputBytes = 0
  var errorOutput: [UInt8] = []
  var buffer = [UInt8](repeating: 0, count: 65536)
  var reaped = false
  public var outputLimit = 256 << 20
  public var errorLimit = 64 << 10

  /// Finds `name` on `searchPath` (or takes it as is when it holds a slash).
  public static func locate(_ name: String) -> String? {
    if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
    for directory in searchPath where access(directory + "/" + name, X_OK) == 0 {
      return directory + "/" + name
    }
    return nil
  }

  /// Starts `argv`; fails with the outcome's `failure` set when the tool is missing or cannot
  /// be spawned.
  public static func start(_ argv: [String], output: Output = .capture) -> Result<
    ChildProcess, ProcessOutcomeError
  > {
    var outcome = ProcessOutcome(argv: argv)
    guard let name = argv.first, let path = locate(name) else {
      outcome.failure = "not found in \(searchPath.joined(separator: ":"))"
      return .failure(ProcessOutcomeError(outcome: outcome))
    }
    outcome.executable = path
    var outEnds: [Int32] = [-1, -1]
    var errEnds: [Int32] = [-1, -1]
    guard pipe(&errEnds) == 0 else {
      outcome.failure = "pipe: \(String(cString: strerror(errno)))"
      return .failure(ProcessOutcomeError(outcome: outcome))
    }
    if case .capture = output, pipe(&outEnds) != 0 {
      close(errEnds[0])
      close(errEnds[1])
      outcome.failure = "pipe: \(String(cString: strerror(errno)))"
      return .failure(ProcessOutcomeError(outcome: outcome))
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    switch output {
    case .capture: posix_spawn_file_actions_adddup2(&actions, outEnds[1], 1)
    case .descriptor(let fd): posix_spawn_file_actions_adddup2(&actions, fd, 1)
    }
    posix_spawn_file_actions_adddup2(&actions, errEnds[1], 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    // Its own process group, so a time-out can end the tool and anything it started; default
    // signal handling, whatever the parent installed.
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGINT)
    sigaddset(&defaults, SIGTERM)
    sigaddset(&defaults, SIGPIPE)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setsigmask(&attributes, &empty)
    posix_spawnattr_setpgroup(&attributes, 0)
    posix_spawnattr_setflags(
      &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

    let cArguments = argv.map { strdup($0) } + [nil]
    let cEnvironment = environment.map { strdup($0) } + [nil]
    defer {
      for pointer in cArguments { free(pointer) }
      for pointer in cEnvironment { free(pointer) }
    }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, path, &actions, &attributes, cArguments, cEnvironment)
    close(errEnds[1])
    if outEnds[1] >= 0 { close(outEnds[1]) }
    guard result == 0 else {
      close(errEnds[0])
      if outEnds[0] >= 0 { close(outEnds[0]) }
      outcome.failure = "posix_spawn: \(String(cString: strerror(result)))"
      return .failure(ProcessOutcomeError(outcome: outcome))
    }
    // Its own process group (pgid = pid): an interrupt of lbscope ends it (Interrupt.swift).
    InterruptCleanup.register(processGroup: pid)
    for fd in [outEnds[0], errEnds[0]] where fd >= 0 {
      _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
      _ = fcntl(fd, F_SETFL, O_NONBLOCK)
    }
    return .success(
      ChildProcess(
        pid: pid, argv: argv, executable: path, outputPipe: outEnds[0], errorPipe: errEnds[0],
        outcome: outcome))
  }

  init(
    pid: pid_t, argv: [String], executable: String, outputPipe: Int32, errorPipe: Int32,
    outcome: ProcessOutcome
  ) {
    self.pid = pid
    self.argv = argv
    self.executable = executable
    self.outputPipe = outputPipe
    self.errorPipe = errorPipe
    self.outcome = outcome
  }

  deinit {
    if outputPipe >= 0 { close(outputPipe) }
    if errorPipe >= 0 { close(errorPipe) }
    if !reaped {
      // Never leave a child running or a zombie behind.
      kill(-pid, SIGKILL)
      var status: Int32 = 0
      waitpid(pid, &status, 0)
      InterruptCleanup.unregister(processGroup: pid)
    }
  }

  /// Sends `signal` to the child alone.
  public func send(_ signal: Int32) { kill(pid, signal) }

  /// Reads the child's output until it exits. Past `timeout`, the child's process group gets
  /// SIGTERM, then SIGKILL a second later, and the outcome says `timedOut`.
  public func wait(timeout: Duration? = nil) -> ProcessOutcome {
    let clock = ContinuousClock()
    let deadline = timeout.map { started.advanced(by: $0) }
    var terminatedAt: ContinuousClock.Instant?
    var ignored = 0
    while true {
      var fds: [pollfd] = []
      if outputPipe >= 0 { fds.append(pollfd(fd: outputPipe, events: Int16(POLLIN), revents: 0)) }
      if errorPipe >= 0 { fds.append(pollfd(fd: errorPipe, events: Int16(POLLIN), revents: 0)) }
      _ = poll(&fds, nfds_t(fds.count), 50)
      Self.drain(&outputPipe, into: &output, limit: outputLimit, count: &outputBytes, buffer: &buffer)
      Self.drain(&errorPipe, into: &errorOutput, limit: errorLimit, count: &ignored, buffer: &buffer)
      var status: Int32 = 0
      if waitpid(pid, &status, WNOHANG) == pid {
        reaped = true
        InterruptCleanup.unregister(processGroup: pid)
        // Collect what is still in the pipes.
        Self.drain(&outputPipe, into: &output, limit: outputLimit, count: &outputBytes, buffer: &buffer)
        Self.drain(&errorPipe, into: &errorOutput, limit: errorLimit, count: &ignored, buffer: &buffer)
        let low = status & 0x7F
        if low == 0 { outcome.status = (status >> 8) & 0xFF } else { outcome.signal = low }
        break
      }
      let now = clock.now
      if let deadline, now >= deadline {
        if let terminatedAt {
          if now >= terminatedAt.advanced(by: .seconds(1)) { kill(-pid, SIGKILL) }
        } else {
          outcome.timedOut = true
          kill(-pid, SIGTERM)
          terminatedAt = now
        }
      }
    }
    outcome.duration = started.duration(to: clock.now)
    outcome.output = output
    outcome.outputBytes = outputBytes
    outcome.errorOutput = errorOutput
    return outcome
  }

  /// Reads the child's output until its standard error contains `text`, it exits, or `timeout`
  /// passes; returns whether the text appeared. What was read is kept for `wait`.
  public func waitForError(containing text: String, timeout: Duration) -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    let needle = Array(text.utf8)
    var ignored = 0
    while ContinuousClock.now < deadline {
      var fds: [pollfd] = []
      if outputPipe >= 0 { fds.append(pollfd(fd: outputPipe, events: Int16(POLLIN), revents: 0)) }
      if errorPipe >= 0 { fds.append(pollfd(fd: errorPipe, events: Int16(POLLIN), revents: 0)) }
      if fds.isEmpty { break }
      _ = poll(&fds, nfds_t(fds.count), 50)
      Self.drain(&outputPipe, into: &output, limit: outputLimit, count: &outputBytes, buffer: &buffer)
      Self.drain(&errorPipe, into: &errorOutput, limit: errorLimit, count: &ignored, buffer: &buffer)
      if errorOutput.count >= needle.count
        && (0...(errorOutput.count - needle.count)).contains(where: {
          errorOutput[$0..<($0 + needle.count)].elementsEqual(needle)
        })
      {
        return true
      }
    }
    return false
  }

  /// Reads what is available; closes the descriptor at end of file.
  static func drain(
    _ fd: inout Int32, into sink: inout [UInt8], limit: Int, count: inout Int, buffer: inout [UInt8]
  ) {
    guard fd >= 0 else { return }
    while true {
      let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
      if n > 0 {
        count += n
        let room = max(0, limit - sink.count)
        sink.append(contentsOf: buffer[0..<min(n, room)])
        continue
      }
      if n == 0 || (errno != EAGAIN && errno != EINTR) {
        close(fd)
        fd = -1
      }
      return
    }
  }

  /// Runs `argv` to the end (or its time box) and returns the outcome.
  public static func run(_ argv: [String], output: Output = .capture, timeout: Duration? = nil)
    -> ProcessOutcome
  {
    switch start(argv, output: output) {
    case .success(let child): child.wait(timeout: timeout)
    case .failure(let error): error.outcome
    }
  }
}

/// A child that could not be started, with the outcome recording why.
public struct ProcessOutcomeError: Error {
  public var outcome: ProcessOutcome
}
