import CNetfilterConntrack

#if canImport(Glibc)
  import Glibc
#endif

/// Runs code with the calling thread inside another network namespace (`setns(2)` with
/// `CLONE_NEWNET`), then moves it back. A netlink socket opened inside `body` stays bound to
/// that namespace's conntrack table after the thread returns, so the handle can be used later.
///
/// Only the calling thread moves; `body` must not suspend or hop threads.
public enum NetworkNamespace {
  /// Why entering or leaving failed.
  public struct Failure: Error, CustomStringConvertible {
    public var path: String
    public var errno: Int32
    public var description: String { "setns \(path): \(String(cString: strerror(errno)))" }
  }

  /// Runs `body` inside the namespace at `path` (`/var/run/netns/NAME` for `ip netns add NAME`).
  public static func run<T>(in path: String, _ body: () throws -> T) throws -> T {
    let home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
    guard home >= 0 else { throw Failure(path: "/proc/thread-self/ns/net", errno: errno) }
    defer { close(home) }
    let target = open(path, O_RDONLY | O_CLOEXEC)
    guard target >= 0 else { throw Failure(path: path, errno: errno) }
    defer { close(target) }
    guard lbscope_setns_net(target) == 0 else { throw Failure(path: path, errno: errno) }
    defer {
      // Returning cannot fail for a namespace we came from while holding its descriptor.
      _ = lbscope_setns_net(home)
    }
    return try body()
  }
}
