/* Writes a LINUX_SLL2 pcap like `tcpdump -i any` on a Kubernetes node: Service connections seen
 * on both NAT legs (client -> ClusterIP before DNAT, client -> Pod after it), interleaved
 * 256 at a time. Each connection: handshake, a ~300-byte HTTP request, a response of 1-5
 * full-size segments, ACKs, FIN exchange; every packet on both legs. Fixed seed.
 * usage: gen PACKETS OUT.pcap */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint32_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (uint32_t)rng; }

static FILE *out;
static uint64_t written, limit;
static uint64_t now_us = 1700000000ULL * 1000000ULL;

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

static uint16_t ipsum(const uint8_t *h) {
  uint32_t s = 0;
  for (int i = 0; i < 20; i += 2) s += (h[i] << 8) | h[i + 1];
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s;
}

static void packet(int ifindex, uint32_t src, uint16_t sp, uint32_t dst, uint16_t dp, uint32_t seq,
                   uint32_t ack, uint8_t flags, uint16_t id, int payload) {
  if (written >= limit) return;
  static uint8_t buf[2048];
  int len = 20 + 20 + 32 + payload;
  uint32_t rec[4] = {(uint32_t)(now_us / 1000000), (uint32_t)(now_us % 1000000), (uint32_t)len, (uint32_t)len};
  memset(buf, 0, 20 + 20 + 32);
  put16(buf, 0x0800); put32(buf + 4, ifindex); put16(buf + 8, 1); buf[10] = 0; buf[11] = 6;
  uint8_t *ip = buf + 20;
  ip[0] = 0x45; put16(ip + 2, 20 + 32 + payload); put16(ip + 4, id); put16(ip + 6, 0x4000);
  ip[8] = 64; ip[9] = 6; put32(ip + 12, src); put32(ip + 16, dst); put16(ip + 10, ipsum(ip));
  uint8_t *t = ip + 20;
  put16(t, sp); put16(t + 2, dp); put32(t + 4, seq); put32(t + 8, ack); t[12] = 8 << 4; t[13] = flags;
  put16(t + 14, 502);
  t[20] = 1; t[21] = 1; t[22] = 8; t[23] = 10; put32(t + 24, (uint32_t)(now_us / 1000)); put32(t + 28, 0);
  if (payload > 0) {
    memset(t + 32, 'x', payload);
    if (flags & 0x08 && dp != 80 && dp != 8080) {} else if (payload == 300) memcpy(t + 32, "GET / HTTP/1.1\r\n", 16);
  }
  fwrite(rec, 4, 4, out);
  fwrite(buf, 1, len, out);
  written++;
  now_us += 10;  /* 100k packets/s: a busy node's Service traffic (1M/s made every flow of a run alive at once) */
}

struct conn { uint32_t client, pod, isn, risn; uint16_t port; uint16_t cid, sid; int segs, step; };

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: gen PACKETS OUT.pcap\n"); return 2; }
  limit = strtoull(argv[1], 0, 10);
  out = fopen(argv[2], "wb");
  if (!out) { perror(argv[2]); return 2; }
  setvbuf(out, 0, _IOFBF, 1 << 22);
  uint32_t header[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 262144, 276};
  fwrite(header, 4, 6, out);
  const uint32_t vip = 0x0A60000A;        /* 10.96.0.10:80 */
  enum { BATCH = 256 };
  struct conn c[BATCH];
  uint32_t next_port = 0;
  while (written < limit) {
    for (int i = 0; i < BATCH; i++) {
      c[i].client = 0xC0A83200 | (1 + rnd() % 200);          /* 192.168.50.x */
      c[i].pod = 0x0AF40100 | (2 + rnd() % 8);               /* 10.244.1.2-9 */
      c[i].port = 32768 + (next_port++ % 28000);
      c[i].isn = rnd(); c[i].risn = rnd(); c[i].cid = rnd(); c[i].sid = rnd();
      c[i].segs = 1 + rnd() % 5;
    }
    /* Each step is one packet of every connection in the batch, on both legs. */
    for (int step = 0; step < 12 && written < limit; step++) {
      for (int i = 0; i < BATCH && written < limit; i++) {
        struct conn *k = &c[i];
        uint32_t cs = k->isn + 1, ss = k->risn + 1;
        int resp = 1400;
        int last = 4 + k->segs;               /* steps after the response segments */
        uint32_t sdone = ss + (uint32_t)(k->segs * resp);
        /* (client-side seq/ack, direction, flags, payload) per step */
        int fromClient, payload = 0; uint8_t flags; uint32_t seq, ack;
        if (step == 0) { fromClient = 1; flags = 0x02; seq = k->isn; ack = 0; }
        else if (step == 1) { fromClient = 0; flags = 0x12; seq = k->risn; ack = cs; }
        else if (step == 2) { fromClient = 1; flags = 0x10; seq = cs; ack = ss; }
        else if (step == 3) { fromClient = 1; flags = 0x18; seq = cs; ack = ss; payload = 300; }
        else if (step < 4 + k->segs) { fromClient = 0; flags = 0x10; seq = ss + (uint32_t)((step - 4) * resp); ack = cs + 300; payload = resp; }
        else if (step == last) { fromClient = 1; flags = 0x10; seq = cs + 300; ack = sdone; }
        else if (step == last + 1) { fromClient = 1; flags = 0x11; seq = cs + 300; ack = sdone; }
        else if (step == last + 2) { fromClient = 0; flags = 0x11; seq = sdone; ack = cs + 301; }
        else if (step == last + 3) { fromClient = 1; flags = 0x10; seq = cs + 301; ack = sdone + 1; }
        else continue;
        uint16_t id = fromClient ? k->cid++ : k->sid++;
        if (fromClient) {
          packet(3, k->client, k->port, vip, 80, seq, ack, flags, id, payload);        /* before DNAT */
          packet(5, k->client, k->port, k->pod, 8080, seq, ack, flags, id, payload);   /* after DNAT */
        } else {
          packet(5, k->pod, 8080, k->client, k->port, seq, ack, flags, id, payload);
          packet(3, vip, 80, k->client, k->port, seq, ack, flags, id, payload);
        }
      }
    }
  }
  fclose(out);
  return 0;
}
