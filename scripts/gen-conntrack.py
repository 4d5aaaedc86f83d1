#!/usr/bin/env python3
"""Write a synthetic but realistic `conntrack -L` dump for benchmarks.

The output looks like conntrack-tools 1.4.x run as `conntrack -L 2>&1` on a busy
Kubernetes node (kube-proxy in iptables mode), one entry per line in hash order,
ending with the "N flow entries have been shown." line that conntrack writes to
stderr.  The same --seed always gives byte-identical output.

Mix (by entry count):
  ~70%  TCP to ClusterIP Services (~50 ClusterIPs, 3-20 pod endpoints each),
        DNATed to pod IPs; ESTABLISHED/TIME_WAIT/... with [ASSURED], SYN_SENT
        with [UNREPLIED]; a little TCP DNS to kube-dns.  Some Services are
        deliberately skewed (scaled-up pods, a hot pod, a pod that does not
        answer) so the analysis has something to find.
  ~10%  UDP DNS to 10.96.0.10:53, DNATed to 2 CoreDNS pods, some [UNREPLIED].
  ~10%  NodePort traffic from external clients to 192.168.10.11:3xxxx, DNATed
        and masqueraded (reply dst = node IP, new reply dport); one NodePort is
        externalTrafficPolicy=Local (DNAT only, no masquerade).
  ~10%  connections without DNAT: node to apiserver, apiserver to kubelet,
        pod to pod, pod to Internet (SNAT only), host DNS to the LAN resolver
        on port 53, VXLAN/NTP, SSH, ICMP echo.

About 20,000 distinct source addresses.  Source ports are unique per client, so
no two entries share an original tuple, as in a real table.

Usage: gen-conntrack.py --entries N --seed S --out PATH
"""

import argparse
import os
import random
import sys

NODE_IP = "192.168.10.11"
LAN_RESOLVER = "192.168.10.1"
APISERVERS = ["192.168.10.2", "192.168.10.3", "192.168.10.4"]
OTHER_NODES = ["192.168.10.%d" % i for i in range(12, 28)]
LOCAL_POD_SUBNET = 3  # this node's pod CIDR is 10.244.3.0/24
EPHEMERAL_LO, EPHEMERAL_N = 32768, 28232  # net.ipv4.ip_local_port_range 32768 60999

# (port, targetPort) pairs a Service might expose.
SERVICE_PORTS = [
    (80, 8080), (80, 80), (443, 8443), (8080, 8080), (5432, 5432), (6379, 6379),
    (9090, 9090), (3306, 3306), (50051, 50051), (8443, 8443), (27017, 27017),
    (80, 3000), (9200, 9200), (4222, 4222), (8000, 8000),
]

# TCP states after a DNAT to a backend that answers: (state, share, max timeout, flag).
# kube-proxy sets nf_conntrack_tcp_timeout_established=86400 and close_wait=3600.
TCP_STATES = [
    ("ESTABLISHED", 0.700, 86400, "[ASSURED]"),
    ("TIME_WAIT", 0.230, 120, "[ASSURED]"),
    ("CLOSE_WAIT", 0.025, 3600, "[ASSURED]"),
    ("FIN_WAIT", 0.015, 120, "[ASSURED]"),
    ("LAST_ACK", 0.005, 30, "[ASSURED]"),
    ("CLOSE", 0.005, 10, "[ASSURED]"),
    ("SYN_RECV", 0.005, 60, None),
    ("SYN_SENT", 0.015, 120, "[UNREPLIED]"),
]


def build_topology(rng):
    """Services, endpoints and client pools; all drawn from rng."""
    # Pods that can be endpoints: 16 nodes' pod subnets.
    pod_pool = ["10.244.%d.%d" % (a, b) for a in range(16) for b in range(2, 255)]
    rng.shuffle(pod_pool)
    coredns = ["10.244.0.5", "10.244.1.3"]
    local_eps = ["10.244.%d.%d" % (LOCAL_POD_SUBNET, h) for h in (10, 11)]
    pod_pool = [p for p in pod_pool if p not in coredns and p not in local_eps]
    used_vips = {"10.96.0.1", "10.96.0.10"}

    services = []  # dicts: vip, port, tport, backends [(ip, port)], weights, fail

    # The default/kubernetes Service points at the apiservers, not at pods.
    services.append({"vip": "10.96.0.1", "port": 443,
                     "backends": [(a, 6443) for a in APISERVERS],
                     "weights": [1.0] * 3, "fail": None, "load": 1.0})
    # kube-dns over TCP (truncated answers, zone transfers): small, TIME_WAIT mostly.
    services.append({"vip": "10.96.0.10", "port": 53,
                     "backends": [(p, 53) for p in coredns],
                     "weights": [1.0, 1.0], "fail": None, "load": 0.3})

    n_vips = 48  # plus the two above: 50 ClusterIPs
    for i in range(n_vips):
        while True:
            vip = "10.96.%d.%d" % (rng.randrange(0, 256), rng.randrange(1, 255))
            if vip not in used_vips:
                used_vips.add(vip)
                break
        n_back = rng.randint(3, 20)
        pods = [pod_pool.pop() for _ in range(n_back)]
        ports = [rng.choice(SERVICE_PORTS)]
        if rng.random() < 0.25:  # a second port on the same ClusterIP, e.g. 80 + 443
            extra = rng.choice(SERVICE_PORTS)
            if extra[0] != ports[0][0]:
                ports.append(extra)
        shape = rng.choices(["uniform", "scaled", "hot", "failing"], [0.55, 0.2, 0.15, 0.1])[0]
        weights = [1.0] * n_back
        fail = None
        if shape == "scaled":  # pods added by a scale-up hold few long-lived connections
            for k in range(n_back - max(1, n_back // 3), n_back):
                weights[k] = 0.15
        elif shape == "hot":
            weights[0] = 4.0
        elif shape == "failing":
            fail = rng.randrange(n_back)
        load = 1.0 / (i + 1) ** 0.6
        for port, tport in ports:
            services.append({"vip": vip, "port": port,
                             "backends": [(p, tport) for p in pods],
                             "weights": weights, "fail": fail, "load": load})

    # NodePorts on five of the busier pod-backed Services; the last one is
    # externalTrafficPolicy=Local (only this node's pods, no masquerade).
    nodeports = []
    used_np = set()
    for k, svc in enumerate(services[2:7]):
        np_port = 31380 if k == 0 else rng.randrange(30000, 32768)
        while np_port in used_np:
            np_port = rng.randrange(30000, 32768)
        used_np.add(np_port)
        local = k == 4
        if local:
            # Two of the Service's pods run on this node.
            for other in services:
                if other["vip"] == svc["vip"]:
                    for j, ip in enumerate(local_eps):
                        other["backends"][j] = (ip, other["backends"][j][1])
            backends = svc["backends"][:2]
            weights = [1.0, 1.0]
        else:
            backends, weights = svc["backends"], svc["weights"]
        nodeports.append({"port": np_port, "backends": backends, "weights": weights,
                          "local": local, "load": [3.0, 2.0, 1.0, 1.0, 0.5][k]})

    # ~14,000 pod clients + ~6,000 external clients = ~20,000 sources.
    internal = ["10.244.%d.%d" % (a, b) for a in range(64) for b in range(2, 255)]
    rng.shuffle(internal)
    internal = internal[:14000]
    internal += [NODE_IP]  # host-network agents on this node also use ClusterIPs
    external = ["%s.%d" % (net, h) for net in ("203.0.113", "198.51.100", "192.0.2")
                for h in range(1, 255)]
    cgnat = ["100.64.%d.%d" % (a, b) for a in range(256) for b in range(1, 255)]
    rng.shuffle(cgnat)
    external += cgnat[:6000 - len(external)]
    rng.shuffle(external)
    return services, nodeports, internal, external


def zipf_cum(n, s):
    cum, total = [], 0.0
    for r in range(n):
        total += 1.0 / (r + 1) ** s
        cum.append(total)
    return cum


def cumulate(weights):
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    return cum


def split(n, shares):
    counts = [int(n * s) for s in shares]
    counts[0] += n - sum(counts)
    return counts


def generate(n, seed):
    rng = random.Random(seed)
    services, nodeports, internal, external = build_topology(rng)
    n_svc, n_dns, n_np, n_plain = split(n, [0.70, 0.10, 0.10, 0.10])

    clients = internal + external
    next_port = [rng.randrange(EPHEMERAL_N) for _ in clients]
    int_cum = zipf_cum(len(internal), 0.7)
    ext_cum = zipf_cum(len(external), 0.7)
    ext_off = len(internal)
    rand = rng.random
    randrange = rng.randrange
    choices = rng.choices

    lines = []
    out = lines.append

    def sport_of(ci):
        p = next_port[ci]
        next_port[ci] = p + 1
        return EPHEMERAL_LO + p % EPHEMERAL_N

    state_names = [s[0] for s in TCP_STATES]
    state_cum = cumulate([s[1] for s in TCP_STATES])
    state_info = {s[0]: s for s in TCP_STATES}

    # --- TCP to ClusterIPs -------------------------------------------------
    svc_idx = choices(range(len(services)), cum_weights=cumulate([s["load"] for s in services]),
                      k=n_svc)
    per_svc = [0] * len(services)
    for i in svc_idx:
        per_svc[i] += 1
    for svc, cnt in zip(services, per_svc):
        if cnt == 0:
            continue
        vip, vport = svc["vip"], svc["port"]
        backs = choices(range(len(svc["backends"])), cum_weights=cumulate(svc["weights"]), k=cnt)
        cls = choices(range(len(internal)), cum_weights=int_cum, k=cnt)
        if vport == 53:  # TCP DNS: short-lived
            states = choices(["TIME_WAIT", "ESTABLISHED"], [0.9, 0.1], k=cnt)
        else:
            states = choices(state_names, cum_weights=state_cum, k=cnt)
        for b, ci, st in zip(backs, cls, states):
            bip, bport = svc["backends"][b]
            if b == svc["fail"] and rand() < 0.85:
                st = "SYN_SENT"
            _, _, tmax, flag = state_info[st]
            c = internal[ci]
            sp = sport_of(ci)
            to = randrange(tmax) if st != "ESTABLISHED" else 86400 - int(rng.expovariate(1 / 3000.0)) % 86400
            # Hairpin: a pod reaching itself through its Service is masqueraded
            # to its bridge address.
            rdst = c if c != bip else "10.244.%s.1" % c.split(".")[2]
            if flag == "[UNREPLIED]":
                out("tcp      6 %d %s src=%s dst=%s sport=%d dport=%d [UNREPLIED] src=%s dst=%s sport=%d dport=%d mark=0 use=1"
                    % (to, st, c, vip, sp, vport, bip, rdst, bport, sp))
            elif flag is None:
                out("tcp      6 %d %s src=%s dst=%s sport=%d dport=%d src=%s dst=%s sport=%d dport=%d mark=0 use=1"
                    % (to, st, c, vip, sp, vport, bip, rdst, bport, sp))
            else:
                out("tcp      6 %d %s src=%s dst=%s sport=%d dport=%d src=%s dst=%s sport=%d dport=%d [ASSURED] mark=0 use=%d"
                    % (to, st, c, vip, sp, vport, bip, rdst, bport, sp, 2 if rand() < 0.01 else 1))

    # --- UDP DNS to kube-dns -----------------------------------------------
    coredns = services[1]["backends"]
    backs = choices(range(2), [1.0, 1.0], k=n_dns)
    cls = choices(range(len(internal)), cum_weights=int_cum, k=n_dns)
    for b, ci in zip(backs, cls):
        bip, bport = coredns[b]
        c = internal[ci]
        sp = sport_of(ci)
        to = randrange(31)
        if rand() < 0.05:
            out("udp      17 %d src=%s dst=10.96.0.10 sport=%d dport=53 [UNREPLIED] src=%s dst=%s sport=53 dport=%d mark=0 use=1"
                % (to, c, sp, bip, c, sp))
        else:
            out("udp      17 %d src=%s dst=10.96.0.10 sport=%d dport=53 src=%s dst=%s sport=53 dport=%d mark=0 use=1"
                % (to, c, sp, bip, c, sp))

    # --- NodePort from external clients -------------------------------------
    np_idx = choices(range(len(nodeports)), cum_weights=cumulate([x["load"] for x in nodeports]),
                     k=n_np)
    per_np = [0] * len(nodeports)
    for i in np_idx:
        per_np[i] += 1
    masq_next = {}  # per backend: the masquerade source port to hand out next
    for npv, cnt in zip(nodeports, per_np):
        backs = choices(range(len(npv["backends"])), cum_weights=cumulate(npv["weights"]), k=cnt)
        cls = choices(range(len(external)), cum_weights=ext_cum, k=cnt)
        states = choices(state_names, cum_weights=state_cum, k=cnt)
        npport = npv["port"]
        for b, ci, st in zip(backs, cls, states):
            bip, bport = npv["backends"][b]
            _, _, tmax, flag = state_info[st]
            c = external[ci]
            sp = sport_of(ext_off + ci)
            to = randrange(tmax) if st != "ESTABLISHED" else 86400 - int(rng.expovariate(1 / 3000.0)) % 86400
            if npv["local"]:
                rdst, rdport = c, sp
            else:
                # kube-proxy's MASQUERADE --random-fully: a fresh port per connection.
                key = (bip, bport)
                m = masq_next.get(key)
                if m is None:
                    m = randrange(64512)
                masq_next[key] = m + 1
                rdst, rdport = NODE_IP, 1024 + (m * 7919) % 64512
            if flag == "[UNREPLIED]":
                out("tcp      6 %d %s src=%s dst=%s sport=%d dport=%d [UNREPLIED] src=%s dst=%s sport=%d dport=%d mark=0 use=1"
                    % (to, st, c, NODE_IP, sp, npport, bip, rdst, bport, rdport))
            elif flag is None:
                out("tcp      6 %d %s src=%s dst=%s sport=%d dport=%d src=%s dst=%s sport=%d dport=%d mark=0 use=1"
                    % (to, st, c, NODE_IP, sp, npport, bip, rdst, bport, rdport))
            else:
                out("tcp      6 %d %s src=%s dst=%s sport=%d dport=%d src=%s dst=%s sport=%d dport=%d [ASSURED] mark=0 use=1"
                    % (to, st, c, NODE_IP, sp, npport, bip, rdst, bport, rdport))

    # --- no DNAT --------------------------------------------------------------
    kinds = choices(["api", "kubelet", "pod2pod", "egress", "hostdns", "vxlan", "ntp", "ssh", "icmp"],
                    [0.35, 0.15, 0.20, 0.10, 0.08, 0.03, 0.02, 0.05, 0.02], k=n_plain)
    local_pods = ["10.244.%d.%d" % (LOCAL_POD_SUBNET, h) for h in range(2, 60)]
    seq_next = {}

    def seq(key, lo=EPHEMERAL_LO, n=EPHEMERAL_N):
        """Next port (or ICMP id) for one (source, destination) pair: no two
        entries share an original tuple."""
        p = seq_next.get(key)
        if p is None:
            p = randrange(n)
        seq_next[key] = p + 1
        return lo + p % n

    for kind in kinds:
        if kind == "api":
            a = APISERVERS[randrange(3)]
            sp = seq(a)
            est = rand() < 0.9
            out("tcp      6 %d %s src=%s dst=%s sport=%d dport=6443 src=%s dst=%s sport=6443 dport=%d [ASSURED] mark=0 use=1"
                % (86400 - randrange(300) if est else randrange(120), "ESTABLISHED" if est else "TIME_WAIT",
                   NODE_IP, a, sp, a, NODE_IP, sp))
        elif kind == "kubelet":
            a = (APISERVERS + OTHER_NODES)[randrange(19)]
            sp = seq(a)
            out("tcp      6 %d TIME_WAIT src=%s dst=%s sport=%d dport=10250 src=%s dst=%s sport=10250 dport=%d [ASSURED] mark=0 use=1"
                % (randrange(120), a, NODE_IP, sp, NODE_IP, a, sp))
        elif kind == "pod2pod":
            ci = choices(range(len(internal)), cum_weights=int_cum)[0]
            c = internal[ci]
            sp = sport_of(ci)
            d = local_pods[randrange(len(local_pods))]
            dport = (8080, 9090, 8443, 15090)[randrange(4)]
            out("tcp      6 %d ESTABLISHED src=%s dst=%s sport=%d dport=%d src=%s dst=%s sport=%d dport=%d [ASSURED] mark=0 use=1"
                % (86400 - randrange(86400), c, d, sp, dport, d, c, dport, sp))
        elif kind == "egress":
            # A local pod to the Internet: SNAT only (reply dst is the node), no DNAT.
            c = local_pods[randrange(len(local_pods))]
            d = "151.101.%d.%d" % (randrange(256), randrange(1, 255))
            sp = seq(c)
            out("tcp      6 %d ESTABLISHED src=%s dst=%s sport=%d dport=443 src=%s dst=%s sport=443 dport=%d [ASSURED] mark=0 use=1"
                % (86400 - randrange(86400), c, d, sp, d, NODE_IP, 1024 + randrange(64512)))
        elif kind == "hostdns":
            sp = seq(LAN_RESOLVER)
            if rand() < 0.1:
                out("udp      17 %d src=%s dst=%s sport=%d dport=53 [UNREPLIED] src=%s dst=%s sport=53 dport=%d mark=0 use=1"
                    % (randrange(31), NODE_IP, LAN_RESOLVER, sp, LAN_RESOLVER, NODE_IP, sp))
            else:
                out("udp      17 %d src=%s dst=%s sport=%d dport=53 src=%s dst=%s sport=53 dport=%d mark=0 use=1"
                    % (randrange(31), NODE_IP, LAN_RESOLVER, sp, LAN_RESOLVER, NODE_IP, sp))
        elif kind == "vxlan":
            a = OTHER_NODES[randrange(len(OTHER_NODES))]
            sp = seq(a)
            out("udp      17 %d src=%s dst=%s sport=%d dport=8472 src=%s dst=%s sport=8472 dport=%d [ASSURED] mark=0 use=1"
                % (randrange(181), NODE_IP, a, sp, a, NODE_IP, sp))
        elif kind == "ntp":
            a = "162.159.200.%d" % randrange(1, 255)
            sp = seq(a)
            out("udp      17 %d src=%s dst=%s sport=%d dport=123 src=%s dst=%s sport=123 dport=%d mark=0 use=1"
                % (randrange(31), NODE_IP, a, sp, a, NODE_IP, sp))
        elif kind == "ssh":
            ci = choices(range(len(external)), cum_weights=ext_cum)[0]
            c = external[ci]
            sp = sport_of(ext_off + ci)
            out("tcp      6 %d ESTABLISHED src=%s dst=%s sport=%d dport=22 src=%s dst=%s sport=22 dport=%d [ASSURED] mark=0 use=1"
                % (86400 - randrange(86400), c, NODE_IP, sp, NODE_IP, c, sp))
        else:  # icmp echo
            a = (APISERVERS + OTHER_NODES)[randrange(19)]
            ident = seq(("icmp", a), 0, 65536)
            out("icmp     1 %d src=%s dst=%s type=8 code=0 id=%d src=%s dst=%s type=0 code=0 id=%d mark=0 use=1"
                % (randrange(30), NODE_IP, a, ident, a, NODE_IP, ident))

    rng.shuffle(lines)  # conntrack lists in hash-bucket order
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=1000000, help="flow entries to write (default 1000000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--out", required=True, help="output file ('-' for stdout)")
    ap.add_argument("--no-summary", action="store_true",
                    help="omit the final 'N flow entries have been shown.' line")
    args = ap.parse_args()
    if args.entries < 0:
        ap.error("--entries must be >= 0")

    lines = generate(args.entries, args.seed)
    if not args.no_summary:
        lines.append("conntrack v1.4.7 (conntrack-tools): %d flow entries have been shown." % args.entries)

    f = sys.stdout if args.out == "-" else open(args.out, "w", encoding="ascii", newline="\n")
    try:
        chunk = 50000
        for i in range(0, len(lines), chunk):
            f.write("\n".join(lines[i:i + chunk]))
            f.write("\n")
    finally:
        if f is not sys.stdout:
            f.close()


if __name__ == "__main__":
    main()
