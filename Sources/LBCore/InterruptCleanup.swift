import Synchronization

/// What an interrupted run must undo before it exits: the temporary files and directories it
/// is writing (a report's `.lbscope-tmp-PID`, a bundle being collected, an archive extracted
/// into /tmp) and the process groups of the tools it started.
///
/// Writers register a scratch path before creating it and commit it (rename it into place)
/// inside `commit`, which holds the same lock the interrupt handler's cleanup takes: so an
/// interrupt either removes the scratch path before the rename, or finds the complete file
/// already in place, never half of it. The registry holds only names; the command line does the
/// removing (LBCore does no I/O).
public enum InterruptCleanup {
  /// What a registered path is.
  public enum Kind: Sendable {
    /// A file, removed with `unlink`.
    case file
    /// A directory tree, removed with everything in it.
    case directory
  }

  /// The registered state: scratch paths and process groups.
  public struct State: Sendable {
    /// Scratch paths to remove, with what each is.
    public var paths: [String: Kind] = [:]
    /// Process group ids of running children, to end with SIGTERM.
    public var processGroups: Set<Int32> = []
    /// Final paths whose scratch copy has been renamed into place.
    public var committed: Set<String> = []
  }

  static let state = Mutex(State())

  /// Registers a scratch path that an interrupt must remove. Call before creating it.
  public static func register(_ path: String, _ kind: Kind) {
    state.withLock { $0.paths[path] = kind }
  }

  /// Forgets a scratch path (removed or renamed into place by its writer).
  public static func unregister(_ path: String) {
    state.withLock { _ = $0.paths.removeValue(forKey: path) }
  }

  /// Registers the process group of a running child; an interrupt ends it.
  public static func register(processGroup: Int32) {
    state.withLock { _ = $0.processGroups.insert(processGroup) }
  }

  /// Forgets a child's process group once it has been reaped.
  public static func unregister(processGroup: Int32) {
    state.withLock { _ = $0.processGroups.remove(processGroup) }
  }

  /// Runs `rename` (which puts `scratch` in place as `final` and returns 0, or the `errno` of
  /// its failure) under the cleanup lock; on success forgets `scratch` and records `final` as
  /// written. An interrupt comes before the rename (and removes `scratch`) or after it, never
  /// during. Returns what `rename` returned.
  public static func commit(_ scratch: String, as final: String, _ rename: () -> Int32) -> Int32 {
    state.withLock { current in
      let error = rename()
      if error == 0 {
        current.paths.removeValue(forKey: scratch)
        current.committed.insert(final)
      }
      return error
    }
  }

  /// Runs `body` with the registry locked; an interrupt handler calls it and never returns, so
  /// nothing can commit afterwards.
  public static func withLockedState<R>(_ body: (inout State) -> R) -> R {
    state.withLock { body(&$0) }
  }
}
