# shellcheck shell=bash
# scripts/lab.d/nftables-affinity.sh — kube-proxy's nftables mode with ClientIP affinity.
#
# Sourced by scripts/lab. The node gets no iptables rules; instead it gets the `nft -f`
# transaction kube-proxy's nftables proxier writes for the lab's service with
# sessionAffinity ClientIP (pkg/proxy/nftables/proxier.go: service-ips verdict map, a service
# chain with one `ip saddr @affinity-… goto endpoint-…` rule per endpoint and a
# `numgen random mod N vmap`, endpoint chains that `update @affinity-… { ip saddr }` and DNAT).
# After the traffic the node's `nft list ruleset` and `nft list table ip kube-proxy` are kept:
# the affinity sets' elements (with `expires`) are the clients pinned right now. truth.json
# gains "nftAffinity": which source the clients' own reports pin to which endpoint, checked
# against those sets.

scenario_nft_affinity() {
    SC_DESCRIPTION="kube-proxy nftables mode with sessionAffinity ClientIP (timeout 10800 s): three direct clients and one NAT gateway hiding three hosts connect to a ClusterIP service with four backends; numgen picks each source's first backend and the per-endpoint affinity sets pin it there."
    SC_AFFINITY_SECONDS=10800
    SC_DIRECT_CLIENTS=3
    SC_DIRECT_CONNS=12
    SC_GATEWAYS=1
    SC_HOSTS_PER_GW=3
    SC_GW_CONNS=8
    SC_RULES_HOOK=nft_affinity_rules
    SC_TRAFFIC_HOOK=nft_affinity_traffic
    SC_AFTER_HOOK=nft_affinity_truth
    command -v nft >/dev/null 2>&1 || die "missing tool: nft"
}

# nft_affinity_rules FILE — loads the nftables transaction into the node and leaves FILE (the
# iptables-restore input scripts/lab would load) empty, so iptables stays untouched.
nft_affinity_rules() {
    local f=$1 tx="$WORK/kube-proxy.nft"
    env SVC_NAMESPACE="$SVC_NAMESPACE" SVC_SHORT="$SVC_SHORT" SVC_PORTNAME="$SVC_PORTNAME" \
        PROTO="$SVC_PROTO" VIP="$VIP" VPORT="$VPORT" SVC_CIDR="$SVC_CIDR" \
        ENDPOINTS="${BACKENDS[*]}" AFFINITY="$SC_AFFINITY_SECONDS" \
        python3 - "$tx" <<'PY'
import base64, hashlib, os, sys

E = os.environ
proto, vip, vport = E["PROTO"], E["VIP"], E["VPORT"]
eps = E["ENDPOINTS"].split()
affinity = int(E["AFFINITY"])
base = "%s/%s/%s/%s" % (E["SVC_NAMESPACE"], E["SVC_SHORT"], proto, E["SVC_PORTNAME"])

def hashed(name):
    # kube-proxy's hashAndTruncate: base32(sha256(name))[:8] + "-" + name
    return base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()[:8] + "-" + name

svc_chain = "service-" + hashed(base)
ep_base = {ep: hashed("%s__%s/%s" % (base, *ep.rsplit(":", 1))) for ep in eps}
T = "ip kube-proxy"
L = [
    'add table %s { comment "rules for kube-proxy" ; }' % T,
    'add set %s cluster-ips { type ipv4_addr ; comment "Active ClusterIPs" ; }' % T,
    'add set %s nodeport-ips { type ipv4_addr ; comment "IPs that accept NodePort traffic" ; }' % T,
    'add map %s firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "destinations that are subject to LoadBalancerSourceRanges" ; }' % T,
    'add map %s no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }' % T,
    'add map %s no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }' % T,
    'add map %s service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }' % T,
    'add map %s service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }' % T,
    "add chain %s filter-prerouting { type filter hook prerouting priority -110 ; }" % T,
    "add chain %s filter-input { type filter hook input priority -110 ; }" % T,
    "add chain %s filter-forward { type filter hook forward priority -110 ; }" % T,
    "add chain %s filter-output { type filter hook output priority -110 ; }" % T,
    "add chain %s filter-output-post-dnat { type filter hook output priority -90 ; }" % T,
    "add chain %s nat-prerouting { type nat hook prerouting priority -100 ; }" % T,
    "add chain %s nat-output { type nat hook output priority -100 ; }" % T,
    "add chain %s nat-postrouting { type nat hook postrouting priority 100 ; }" % T,
    "add chain %s services" % T,
    "add chain %s service-endpoints-check" % T,
    "add chain %s nodeport-endpoints-check" % T,
    "add chain %s firewall-check" % T,
    "add chain %s cluster-ips-check" % T,
    "add chain %s mark-for-masquerade" % T,
    "add chain %s masquerading" % T,
    'add chain %s reject-chain { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }' % T,
    "add rule %s filter-prerouting ct state new jump firewall-check" % T,
    "add rule %s filter-input ct state new jump nodeport-endpoints-check" % T,
    "add rule %s filter-input ct state new jump service-endpoints-check" % T,
    "add rule %s filter-forward ct state new jump service-endpoints-check" % T,
    "add rule %s filter-forward ct state new jump cluster-ips-check" % T,
    "add rule %s filter-output ct state new jump service-endpoints-check" % T,
    "add rule %s filter-output ct state new jump firewall-check" % T,
    "add rule %s filter-output-post-dnat ct state new jump cluster-ips-check" % T,
    "add rule %s nat-prerouting jump services" % T,
    "add rule %s nat-output jump services" % T,
    "add rule %s nat-postrouting jump masquerading" % T,
    "add rule %s services ip daddr . meta l4proto . th dport vmap @service-ips" % T,
    "add rule %s services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports" % T,
    "add rule %s service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services" % T,
    "add rule %s nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports" % T,
    "add rule %s firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips" % T,
    'add rule %s cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic to invalid ports of ClusterIPs"' % T,
    'add rule %s cluster-ips-check ip daddr { %s } drop comment "Drop traffic to unallocated ClusterIPs"' % (T, E["SVC_CIDR"]),
    "add rule %s mark-for-masquerade mark set mark or 0x4000" % T,
    "add rule %s masquerading mark and 0x4000 == 0 return" % T,
    "add rule %s masquerading mark set mark xor 0x4000" % T,
    "add rule %s masquerading masquerade fully-random" % T,
    "add rule %s reject-chain reject" % T,
]
for ep in eps:
    L.append("add set %s affinity-%s { type ipv4_addr ; flags dynamic,timeout ; timeout %ds ; }" % (T, ep_base[ep], affinity))
# kube-proxy creates every chain first (ensureChain), then fills them.
L.append("add chain %s %s" % (T, svc_chain))
L += ["add chain %s endpoint-%s" % (T, ep_base[ep]) for ep in eps]
for ep in eps:
    L.append("add rule %s %s ip saddr @affinity-%s goto endpoint-%s" % (T, svc_chain, ep_base[ep], ep_base[ep]))
vmap = " , ".join("%d : goto endpoint-%s" % (i, ep_base[ep]) for i, ep in enumerate(eps))
L.append("add rule %s %s numgen random mod %d vmap { %s }" % (T, svc_chain, len(eps), vmap))
for ep in eps:
    ip = ep.rsplit(":", 1)[0]
    c = "endpoint-" + ep_base[ep]
    L += ["add rule %s %s ip saddr %s jump mark-for-masquerade" % (T, c, ip),
          "add rule %s %s update @affinity-%s { ip saddr }" % (T, c, ep_base[ep]),
          "add rule %s %s meta l4proto %s dnat to %s" % (T, c, proto, ep)]
L += ["add element %s cluster-ips { %s }" % (T, vip),
      "add element %s service-ips { %s . %s . %s : goto %s }" % (T, vip, proto, vport, svc_chain)]
with open(sys.argv[1], "w") as f:
    f.write("\n".join(L) + "\n")
PY
    nsexec "$NODE" nft -f "$tx" || die "nft -f failed in $NODE"
    : >"$f"
    rm -f -- "$WORK/chains.json"   # no xt_recent lists in nftables mode
}

# The clients' traffic, then the node's nft state while the pins are fresh.
nft_affinity_traffic() {
    drive_traffic
    # `out` is run_scenario's output directory (bash: callees see the caller's locals).
    nsexec "$NODE" nft list ruleset >"$out/nft-list-ruleset.txt"
    nsexec "$NODE" nft list table ip kube-proxy >"$out/nft-list-table-kube-proxy.txt"
    cp -- "$WORK/kube-proxy.nft" "$out/nft-transaction.nft"
}

# nft_affinity_truth OUTDIR — adds "nftAffinity" to truth.json: each source address pinned to
# the endpoint its connections reached (the clients' reports), and fails the run unless the
# listed affinity sets hold exactly those pins.
nft_affinity_truth() {
    local out=$1
    python3 - "$out" <<'PY'
import json, os, re, sys

out = sys.argv[1]
truth_path = os.path.join(out, "truth.json")
truth = json.load(open(truth_path))
listing = open(os.path.join(out, "nft-list-table-kube-proxy.txt")).read()
sets = {}
for m in re.finditer(r"set (affinity-\S+) \{(.*?)\n\s*\}", listing, re.S):
    name, body = m.group(1), m.group(2)
    ep_ip, ep_port = name.rsplit("__", 1)[1].rsplit("/", 1)
    elems = re.search(r"elements = \{(.*?)\}", body, re.S)
    clients = re.findall(r"(\d+\.\d+\.\d+\.\d+)", elems.group(1)) if elems else []
    sets[name] = {"endpoint": "%s:%s" % (ep_ip, ep_port), "clients": sorted(clients)}
timeout = re.search(r"timeout (\S+)", listing)
pins = []
for s in truth["sources"]:
    if s["backends"]:
        (ep,) = s["backends"].keys()
        pins.append({"client": s["address"], "backend": ep})
pins.sort(key=lambda p: tuple(int(x) for x in p["client"].split(".")))
seen = sorted(({"client": c, "backend": v["endpoint"]} for v in sets.values() for c in v["clients"]),
              key=lambda p: tuple(int(x) for x in p["client"].split(".")))
problems = []
if seen != pins:
    problems.append("affinity sets %s != pins from the clients' reports %s" % (seen, pins))
truth["nftAffinity"] = {
    "timeoutSeconds": truth["service"]["affinity"]["timeoutSeconds"],
    "setTimeoutAsListed": timeout.group(1) if timeout else None,
    "sets": {k: v["endpoint"] for k, v in sorted(sets.items())},
    "pinnedClients": pins,
}
with open(truth_path, "w") as f:
    json.dump(truth, f, indent=2, sort_keys=True)
    f.write("\n")
for p in pins:
    print("lab:   pinned %-15s -> %s" % (p["client"], p["backend"]), file=sys.stderr)
if problems:
    for p in problems:
        print("lab: CHECK FAILED: " + p, file=sys.stderr)
    sys.exit(1)
PY
    echo "nftables mode: nft-transaction.nft is what was loaded (kube-proxy's nft -f shape); nft-list-ruleset.txt and nft-list-table-kube-proxy.txt were listed right after the traffic, their affinity sets' elements are the pinned clients (truth.json \"nftAffinity\"); iptables-save.txt is empty and there is no xt_recent/." >>"$out/README.md"
}
