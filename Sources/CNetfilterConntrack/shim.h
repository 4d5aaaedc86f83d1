#ifndef LBSCOPE_CNETFILTERCONNTRACK_SHIM_H
#define LBSCOPE_CNETFILTERCONNTRACK_SHIM_H
#include <stdint.h>
#include <sys/types.h>
#include <netinet/in.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#endif
