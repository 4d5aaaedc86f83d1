/* The baseline: read every packet with libpcap's pcap_next_ex, decode LINUX_SLL2 -> IPv4 ->
 * TCP/UDP ports, and count packets per 5-tuple in an open-addressing hash table.
 * usage: baseline FILE.pcap   (prints packets and distinct 5-tuples) */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry { uint32_t src, dst; uint16_t sp, dp; uint8_t proto, used; uint64_t packets; };

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: baseline FILE\n"); return 2; }
  char err[PCAP_ERRBUF_SIZE];
  pcap_t *p = pcap_open_offline(argv[1], err);
  if (!p) { fprintf(stderr, "%s\n", err); return 2; }
  size_t cap = 1 << 22, mask = cap - 1, used = 0;
  struct entry *t = calloc(cap, sizeof *t);
  struct pcap_pkthdr *h; const u_char *d;
  uint64_t n = 0;
  while (pcap_next_ex(p, &h, &d) == 1) {
    n++;
    if (h->caplen < 20 + 20) continue;
    if (((d[0] << 8) | d[1]) != 0x0800) continue;
    const u_char *ip = d + 20;
    int ihl = (ip[0] & 15) * 4;
    if (h->caplen < 20 + ihl + 4u) continue;
    struct entry k = {0};
    memcpy(&k.src, ip + 12, 4); memcpy(&k.dst, ip + 16, 4);
    k.proto = ip[9];
    k.sp = (ip[ihl] << 8) | ip[ihl + 1]; k.dp = (ip[ihl + 2] << 8) | ip[ihl + 3];
    uint64_t x = ((uint64_t)k.src << 32 | k.dst) * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)k.sp << 16 | k.dp | (uint64_t)k.proto << 32);
    x ^= x >> 29; x *= 0xBF58476D1CE4E5B9ULL; x ^= x >> 32;
    size_t i = x & mask;
    while (t[i].used && !(t[i].src == k.src && t[i].dst == k.dst && t[i].sp == k.sp && t[i].dp == k.dp && t[i].proto == k.proto)) i = (i + 1) & mask;
    if (!t[i].used) { t[i] = k; t[i].used = 1; if (++used * 2 > cap) { fprintf(stderr, "table full\n"); return 1; } }
    t[i].packets++;
  }
  printf("%llu packets, %zu tuples\n", (unsigned long long)n, used);
  pcap_close(p);
  return 0;
}
