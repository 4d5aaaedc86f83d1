#ifndef LBSCOPE_CPCAP_SHIM_H
#define LBSCOPE_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
