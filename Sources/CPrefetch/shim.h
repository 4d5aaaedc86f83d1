#ifndef LBSCOPE_CPREFETCH_H
#define LBSCOPE_CPREFETCH_H

/* Asks the CPU to start loading the cache line at `address`, to be written soon. A hint only:
   it never faults, whatever the address. The analyzer's hash tables are probed at random, one
   cache miss per probe; starting the loads of a batch of probes first lets the misses overlap. */
static inline void lbscope_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }

#endif
