#if canImport(Glibc)
  import Glibc
#endif

/// Reads a byte range of a regular file ahead of its consumer, on a thread of its own, into a
/// few reused chunks.
///
/// Decoding a capture is one pass over the file; copying it out of the page cache (`read(2)`)
/// was a sixth of `lbscope pcap`'s time, all of it on the decoding thread. Here that copy runs on
/// another core while the decoder works on the previous chunk. Each chunk keeps `prefix` bytes
/// free before its data, so the consumer can put the unfinished end of the previous chunk (a
/// packet record cut by the chunk boundary) right in front of the new data and go on without
/// another copy of the chunk.
///
/// Chunks come back in file order. The producer stops at the end of the range, at a read error
/// (reported with the chunk where it happened) or when `stop()` is called; `stop()` waits for
/// it, so no chunk is written after it returns.
final class ReadAhead: @unchecked Sendable {
  /// One chunk: `prefix` free bytes, then up to `capacity` bytes of the file from `fileOffset`.
  final class Chunk {
    let storage: UnsafeMutableRawBufferPointer
    var fileOffset = 0
    var count = 0
    /// `errno` of a failed read at `fileOffset + count`; 0 when none.
    var error: Int32 = 0

    init(bytes: Int) {
      storage = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 64)
    }

    deinit { storage.deallocate() }
  }

  let prefix: Int
  let capacity: Int
  private let descriptor: Int32
  private let endOffset: Int
  private var nextOffset: Int

  // Shared between the threads; guarded by `mutex`.
  private var mutex = pthread_mutex_t()
  private var changed = pthread_cond_t()
  private var free: [Chunk] = []
  private var full: [Chunk] = []
  private var producerDone = false
  private var stopping = false
  private var thread = pthread_t()
  private var started = false

  /// Starts reading `descriptor` from `offset` up to `endOffset` with `chunks` chunks of
  /// `capacity` bytes (each with `prefix` bytes in front). `nil` when the thread cannot start.
  init?(
    descriptor: Int32, from offset: Int, to endOffset: Int, chunks: Int = 3,
    capacity: Int = 4 << 20, prefix: Int = 1 << 20
  ) {
    self.descriptor = descriptor
    self.endOffset = endOffset
    self.nextOffset = offset
    self.capacity = capacity
    self.prefix = prefix
    pthread_mutex_init(&mutex, nil)
    pthread_cond_init(&changed, nil)
    for _ in 0..<max(2, chunks) { free.append(Chunk(bytes: prefix + capacity)) }
    let me = Unmanaged.passRetained(self)
    let status = pthread_create(
      &thread, nil,
      { context in
        guard let context else { return nil }
        Unmanaged<ReadAhead>.fromOpaque(context).takeRetainedValue().produce()
        return nil
      }, me.toOpaque())
    if status != 0 {
      me.release()
      return nil
    }
    started = true
  }

  /// The owner calls `stop()` first: the producer holds a reference to this object until it ends.
  deinit {
    stop()
    pthread_cond_destroy(&changed)
    pthread_mutex_destroy(&mutex)
  }

  /// The next chunk in file order, waiting for it; `nil` when the range has been read.
  func next() -> Chunk? {
    pthread_mutex_lock(&mutex)
    defer { pthread_mutex_unlock(&mutex) }
    while full.isEmpty && !producerDone { pthread_cond_wait(&changed, &mutex) }
    guard !full.isEmpty else { return nil }
    return full.removeFirst()
  }

  /// Gives a chunk back once nothing of it is needed any more.
  func recycle(_ chunk: Chunk) {
    pthread_mutex_lock(&mutex)
    free.append(chunk)
    pthread_cond_broadcast(&changed)
    pthread_mutex_unlock(&mutex)
  }

  /// Stops the producer and waits for it to end.
  func stop() {
    guard started else { return }
    pthread_mutex_lock(&mutex)
    stopping = true
    pthread_cond_broadcast(&changed)
    pthread_mutex_unlock(&mutex)
    pthread_join(thread, nil)
    started = false
  }

  private func produce() {
    while true {
      pthread_mutex_lock(&mutex)
      while free.isEmpty && !stopping { pthread_cond_wait(&changed, &mutex) }
      if stopping || nextOffset >= endOffset {
        producerDone = true
        pthread_cond_broadcast(&changed)
        pthread_mutex_unlock(&mutex)
        return
      }
      let chunk = free.removeLast()
      pthread_mutex_unlock(&mutex)

      chunk.fileOffset = nextOffset
      chunk.count = 0
      chunk.error = 0
      let wanted = min(capacity, endOffset - nextOffset)
      while chunk.count < wanted, let base = chunk.storage.baseAddress {
        let n = pread(
          descriptor, base + prefix + chunk.count, wanted - chunk.count, off_t(nextOffset + chunk.count))
        if n > 0 {
          chunk.count += n
        } else if n < 0 && errno == EINTR {
          continue
        } else {
          if n < 0 { chunk.error = errno }
          break  // an error, or the file is shorter than it was (the consumer says so)
        }
      }
      nextOffset += chunk.count
      let last = chunk.error != 0 || chunk.count < wanted

      pthread_mutex_lock(&mutex)
      full.append(chunk)
      if last { producerDone = true }
      pthread_cond_broadcast(&changed)
      pthread_mutex_unlock(&mutex)
      if last { return }
    }
  }
}
