#ifndef LBSCOPE_CNETFILTERCONNTRACK_SHIM_H
#define LBSCOPE_CNETFILTERCONNTRACK_SHIM_H
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

/* setns(2) is declared by <sched.h> only under _GNU_SOURCE, which Swift's Glibc module does not
   define; lbscope uses it to read the conntrack table of another network namespace. */
extern int setns(int fd, int nstype);
static inline int lbscope_setns_net(int fd) { return setns(fd, 0x40000000 /* CLONE_NEWNET */); }
#endif
