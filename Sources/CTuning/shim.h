#ifndef LBSCOPE_CTUNING_H
#define LBSCOPE_CTUNING_H

#include <limits.h>
#include <malloc.h>
#include <sys/types.h>

/* Asks the CPU to start loading the cache line at `address`, to be written soon. A hint only:
   it never faults, whatever the address. The analyzer's hash tables are probed at random, one
   cache miss per probe; starting the loads of a batch of probes first lets the misses overlap. */
static inline void lbscope_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }

/* Has glibc keep freed memory for reuse instead of unmapping blocks of 128 KiB or more at once
   and trimming the heap: tables that grow by doubling and a report of tens of megabytes then
   reuse pages instead of faulting fresh zeroed ones in. Returns 1 when both settings took. */
static inline int lbscope_keep_freed_memory(void) {
  int mapped = mallopt(M_MMAP_THRESHOLD, 32 << 20); /* glibc's largest: HEAP_MAX_SIZE / 2 */
  int trimmed = mallopt(M_TRIM_THRESHOLD, INT_MAX);
  return mapped == 1 && trimmed == 1;
}

/* sync_file_range(2), which glibc declares only under _GNU_SOURCE (not set for Swift's Glibc
   module). */
extern int sync_file_range(int fd, off_t offset, off_t count, unsigned int flags);

/* Asks the kernel to start writing a file's bytes [offset, offset + count) to the disk, without
   waiting (SYNC_FILE_RANGE_WRITE): a report written in pieces is then mostly on its way when
   fsync waits for it. A hint: errors are ignored, fsync still decides. */
static inline void lbscope_start_writeback(int fd, off_t offset, off_t count) {
  (void)sync_file_range(fd, offset, count, 2 /* SYNC_FILE_RANGE_WRITE */);
}

#endif