#ifndef LBSCOPE_CTUNING_H
#define LBSCOPE_CTUNING_H

#include <limits.h>
#include <malloc.h>

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

#endif
