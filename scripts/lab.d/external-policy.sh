# shellcheck shell=bash
# scripts/lab.d/external-policy.sh — NodePort traffic under externalTrafficPolicy Local and Cluster.
#
# Sourced by scripts/lab. The lab's service gains NodePort 30080 (and, under policy Local, health
# check node port 32080), written the way current kube-proxy's iptables proxier writes them
# (pkg/proxy/iptables/proxier.go, 1.26+): KUBE-NODEPORTS -> KUBE-EXT-<hash>; under policy Cluster
# the EXT chain marks everything for masquerade and jumps to KUBE-SVC-<hash>; under policy Local it
# sends pod and node-local sources to KUBE-SVC and everything else to KUBE-SVL-<hash>, the cascade
# over this node's endpoints only. Some pods count as on this node (SC_LOCAL_PODS), the others as
# on another node: their rules exist only in the cluster cascade. With no local endpoints the EXT
# chain has no last jump and the filter table's KUBE-EXTERNAL-SERVICES DROPs ("has no local
# endpoints"); with no endpoints at all there are no nat rules and the filter table REJECTs
# ("has no endpoints", icmp-port-unreachable).
#
# LAN clients connect to the node's LAN address 192.168.50.1:30080. After the run truth.json
# gains the expected model (frontends, node ports, per-backend local flag and expectedShareExternal,
# noLocalEndpoints / noEndpoints, masquerade) and, per connection, how it failed (timeout or
# refused) and the source address the pod saw (client kept, or the node's cni0 address).

readonly ETP_NODE_IP=$LAN_GW ETP_NODEPORT=30080 ETP_HEALTH_PORT=32080 ETP_CLUSTER_CIDR=10.244.0.0/16

etp_defaults() {
    SC_TARGET="${ETP_NODE_IP}:${ETP_NODEPORT}"
    SC_RULES_HOOK=etp_rules
    SC_AFTER_HOOK=etp_truth
    SC_LOCAL_PODS=""          # indexes of the pods on this node (the rest are on another node)
    SC_ETP_SHAPE=""           # local | none-drop | none-reject | cluster
}

scenario_etp_local() {
    etp_defaults
    SC_DESCRIPTION="NodePort 30080 with externalTrafficPolicy Local: four endpoints, of which web-0 and web-1 run on this node and web-2, web-3 on another; four LAN clients make 10 connections each to the node's address 192.168.50.1:30080, which reach only the two local pods, half each, and the pods see the clients' own addresses (no masquerade)."
    SC_ETP=Local
    SC_ETP_SHAPE=local
    SC_LOCAL_PODS="0 1"
    SC_DIRECT_CLIENTS=4
    SC_DIRECT_CONNS=10
}

scenario_etp_local_none_drop() {
    etp_defaults
    SC_DESCRIPTION="NodePort 30080 with externalTrafficPolicy Local on a node without local endpoints: the service's two endpoints run on another node, so the KUBE-EXT chain sends LAN traffic nowhere and the filter table's KUBE-EXTERNAL-SERVICES drops it (\"has no local endpoints\"); three LAN clients each try 4 connections to 192.168.50.1:30080 and time out (1 s)."
    SC_ETP=Local
    SC_ETP_SHAPE=none-drop
    SC_PODS=2
    SC_LOCAL_PODS=""
    SC_DIRECT_CLIENTS=3
    SC_DIRECT_CONNS=4
    SC_CLIENT_TIMEOUT=1
    SC_EXPECT_ALL_OK=0
}

scenario_etp_local_none_reject() {
    etp_defaults
    SC_DESCRIPTION="NodePort 30080 with externalTrafficPolicy Local and no ready endpoints anywhere: kube-proxy writes no nat rules for it and the filter table rejects the ClusterIP (KUBE-SERVICES) and the NodePort (KUBE-EXTERNAL-SERVICES) with icmp-port-unreachable (\"has no endpoints\"); three LAN clients each try 4 connections to 192.168.50.1:30080 and are refused."
    SC_ETP=Local
    SC_ETP_SHAPE=none-reject
    SC_PODS=0
    SC_DIRECT_CLIENTS=3
    SC_DIRECT_CONNS=4
    SC_CLIENT_TIMEOUT=1
    SC_EXPECT_ALL_OK=0
}

scenario_etp_cluster_masq() {
    etp_defaults
    SC_DESCRIPTION="NodePort 30080 with externalTrafficPolicy Cluster: the KUBE-EXT chain marks every connection for masquerade and spreads it over all four endpoints, so the pods see the node's cni0 address 10.244.1.1 instead of the four LAN clients (10 connections each to 192.168.50.1:30080)."
    SC_ETP=Cluster
    SC_ETP_SHAPE=cluster
    SC_DIRECT_CLIENTS=4
    SC_DIRECT_CONNS=10
}

# etp_rules FILE — replaces the iptables-restore input with the NodePort-aware one.
etp_rules() {
    env SVC_NAME="$SVC_NAME" PROTO="$SVC_PROTO" VIP="$VIP" VPORT="$VPORT" \
        ENDPOINTS="${BACKENDS[*]}" LOCAL="$SC_LOCAL_PODS" SHAPE="$SC_ETP_SHAPE" \
        NODEPORT="$ETP_NODEPORT" HEALTH="$ETP_HEALTH_PORT" CLUSTER_CIDR="$ETP_CLUSTER_CIDR" \
        python3 - "$1" <<'PY'
import base64, hashlib, os, sys

E = os.environ
svc, proto, vip, vport = E["SVC_NAME"], E["PROTO"], E["VIP"], E["VPORT"]
eps = E["ENDPOINTS"].split()
local = [eps[int(i)] for i in E["LOCAL"].split()]
shape, nodeport, health, cidr = E["SHAPE"], E["NODEPORT"], E["HEALTH"], E["CLUSTER_CIDR"]
policy_local = shape != "cluster"

def h16(s):
    return base64.b32encode(hashlib.sha256(s.encode()).digest()).decode()[:16]

# kube-proxy: every per-service chain shares portProtoHash(servicePortName, protocol).
h = h16(svc + proto)
svc_chain, ext_chain, svl_chain = "KUBE-SVC-" + h, "KUBE-EXT-" + h, "KUBE-SVL-" + h
sep = {ep: "KUBE-SEP-" + h16(svc + proto + ep) for ep in eps}
has_endpoints = bool(eps)
has_external = bool(local) if policy_local else has_endpoints

def cascade(chain, endpoints):
    # kube-proxy: fmt.Sprintf("%0.10f", 1.0/float64(n-i)); the last rule has no statistic.
    out, n = [], len(endpoints)
    for i, ep in enumerate(endpoints):
        stat = " -m statistic --mode random --probability %0.10f" % (1.0 / (n - i)) if i < n - 1 else ""
        out.append('-A %s -m comment --comment "%s -> %s"%s -j %s' % (chain, svc, ep, stat, sep[ep]))
    return out

chains = ["KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", "KUBE-NODEPORTS"]
if has_endpoints:
    chains += [svc_chain, ext_chain] + ([svl_chain] if local else []) + [sep[ep] for ep in eps]
L = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
     ":POSTROUTING ACCEPT [0:0]"] + [":%s - [0:0]" % c for c in chains]
L += ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
      "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"]
if has_endpoints:
    L.append('-A KUBE-NODEPORTS -p %s -m comment --comment "%s" -m %s --dport %s -j %s'
             % (proto, svc, proto, nodeport, ext_chain))
L += ["-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
      "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
      '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully']
for ep in eps:
    ip = ep.rsplit(":", 1)[0]
    L.append('-A %s -s %s/32 -m comment --comment "%s" -j KUBE-MARK-MASQ' % (sep[ep], ip, svc))
    L.append('-A %s -p %s -m comment --comment "%s" -m %s -j DNAT --to-destination %s'
             % (sep[ep], proto, svc, proto, ep))
if has_endpoints:
    L.append('-A KUBE-SERVICES -d %s/32 -p %s -m comment --comment "%s cluster IP" -m %s --dport %s -j %s'
             % (vip, proto, svc, proto, vport, svc_chain))
L.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
if has_endpoints:
    L.append('-A %s ! -s %s -d %s/32 -p %s -m comment --comment "%s cluster IP" -m %s --dport %s -j KUBE-MARK-MASQ'
             % (svc_chain, cidr, vip, proto, svc, proto, vport))
    L += cascade(svc_chain, eps)
    if policy_local:
        L += ['-A %s -s %s -m comment --comment "pod traffic for %s external destinations" -j %s'
              % (ext_chain, cidr, svc, svc_chain),
              '-A %s -m comment --comment "masquerade LOCAL traffic for %s external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ'
              % (ext_chain, svc),
              '-A %s -m comment --comment "route LOCAL traffic for %s external destinations" -m addrtype --src-type LOCAL -j %s'
              % (ext_chain, svc, svc_chain)]
        if local:
            L.append("-A %s -j %s" % (ext_chain, svl_chain))
            L += cascade(svl_chain, local)
    else:
        L += ['-A %s -m comment --comment "masquerade traffic for %s external destinations" -j KUBE-MARK-MASQ'
              % (ext_chain, svc),
              "-A %s -j %s" % (ext_chain, svc_chain)]
L.append("COMMIT")

F = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
     ":KUBE-SERVICES - [0:0]", ":KUBE-EXTERNAL-SERVICES - [0:0]", ":KUBE-NODEPORTS - [0:0]",
     ":KUBE-FORWARD - [0:0]", ":KUBE-PROXY-FIREWALL - [0:0]",
     '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
     '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
     '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
     '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
     '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
     '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
     '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
     '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL',
     '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES']
if not has_endpoints:
    # kube-proxy: internal and external traffic filter target REJECT, "%s has no endpoints".
    F.append('-A KUBE-SERVICES -d %s/32 -p %s -m comment --comment "%s has no endpoints" -m %s --dport %s -j REJECT --reject-with icmp-port-unreachable'
             % (vip, proto, svc, proto, vport))
if not has_external:
    what, target = ("has no endpoints", "REJECT --reject-with icmp-port-unreachable") if not has_endpoints \
        else ("has no local endpoints", "DROP")
    F.append('-A KUBE-EXTERNAL-SERVICES -p %s -m comment --comment "%s %s" -m addrtype --dst-type LOCAL -m %s --dport %s -j %s'
             % (proto, svc, what, proto, nodeport, target))
if policy_local:
    F.append('-A KUBE-NODEPORTS -p tcp -m comment --comment "%s health check node port" -m tcp --dport %s -j ACCEPT'
             % (svc, health))
F += ["-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
      '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
      '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      "COMMIT"]
with open(sys.argv[1], "w") as f:
    f.write("\n".join(L + F) + "\n")
PY
}

# etp_truth OUTDIR — adds the expected model and per-connection outcomes to truth.json, and
# fails the run unless it behaved as the shape intends.
etp_truth() {
    local out=$1
    env SHAPE="$SC_ETP_SHAPE" LOCAL="$SC_LOCAL_PODS" NODE_IP="$ETP_NODE_IP" NODEPORT="$ETP_NODEPORT" \
        HEALTH="$ETP_HEALTH_PORT" POD_GW="$POD_GW" WORK="$WORK" CLUSTER_CIDR="$ETP_CLUSTER_CIDR" \
        PYTHONPATH="$LAB_DIR" python3 - "$out" <<'PY'
from lab_clients import client_rows, failure
import json, os, re, sys

E = os.environ
out, work, shape = sys.argv[1], E["WORK"], E["SHAPE"]
truth_path = os.path.join(out, "truth.json")
truth = json.load(open(truth_path))
s = truth["service"]
nodeport, health = int(E["NODEPORT"]), int(E["HEALTH"])
policy_local = shape != "cluster"
local_idx = {int(i) for i in E["LOCAL"].split()}
backends = s["backends"]
local_eps = [b["address"] for i, b in enumerate(backends) if i in local_idx]
problems = []

# What the node's rules promise external (NodePort) traffic: the cascade over local endpoints
# under Local (1/n each: kube-proxy's own probabilities), the cluster shares under Cluster.
for i, b in enumerate(backends):
    b["local"] = (i in local_idx) if policy_local else None
    if policy_local:
        b["expectedShareExternal"] = round(1.0 / len(local_eps), 10) if i in local_idx else 0.0
    else:
        b["expectedShareExternal"] = b["expectedShare"]
s["nodeIP"] = E["NODE_IP"]
s["nodePort"] = nodeport
s["healthCheckNodePort"] = health if policy_local else None
s["frontends"] = [{"address": "%s:%d" % (s["clusterIP"], s["port"]), "kind": "clusterIP"},
                  {"address": "*:%d" % nodeport, "kind": "nodePort"}]
s["noLocalEndpoints"] = {"none-drop": "drop", "none-reject": "reject"}.get(shape)
s["noEndpoints"] = "reject" if shape == "none-reject" else None
# Masquerade reasons the rules carry (lbscope's MasqueradeReason names): hairpin per endpoint,
# `! -s CLUSTER_CIDR` on the cluster IP, and all NodePort traffic under policy Cluster.
reasons = []
if backends:
    reasons += ["clusterIPFromOutsideCluster", "hairpin"]
if shape == "cluster":
    reasons.append("externalPolicyCluster")
s["masquerade"] = sorted(reasons)
s["externalTrafficMasqueraded"] = shape == "cluster"
truth["target"] = "%s:%d" % (E["NODE_IP"], nodeport)

# Per-connection outcome from the clients' own reports: failure kind and the source the pod saw.
rows = client_rows(work)
for c in truth["connections"]:
    r = rows.get((c["client"], c["localPort"]), {})
    c["failure"] = None if c["ok"] else failure(r.get("error")) or "other"
    c["backendSaw"] = r.get("peer")

conns = truth["connections"]
want_failure = {"none-drop": "timeout", "none-reject": "refused"}.get(shape)
for c in conns:
    if want_failure:
        if c["ok"] or c["failure"] != want_failure:
            problems.append("%s:%s: expected %s, got ok=%s failure=%s" % (c["client"], c["localPort"], want_failure, c["ok"], c["failure"]))
    elif not c["ok"]:
        problems.append("%s:%s failed (%s)" % (c["client"], c["localPort"], c["failure"]))
    elif shape == "local":
        if c["backend"] not in local_eps:
            problems.append("%s reached non-local backend %s" % (c["client"], c["backend"]))
        if c["backendSaw"] != c["seenAs"]:
            problems.append("%s: pod saw %s, not the client %s" % (c["client"], c["backendSaw"], c["seenAs"]))
    elif shape == "cluster" and c["backendSaw"] != E["POD_GW"]:
        problems.append("%s: pod saw %s, not the node %s" % (c["client"], c["backendSaw"], E["POD_GW"]))
truth["outcomes"] = {k: sum(1 for c in conns if (c["failure"] or "ok") == k)
                     for k in sorted({c["failure"] or "ok" for c in conns})}

# The filter rule meant to do the work must have counted the attempts (SYN retries included).
if want_failure:
    text = open(os.path.join(out, "iptables-save.txt")).read()
    m = re.search(r"^\[(\d+):\d+\] -A KUBE-EXTERNAL-SERVICES .*--dport %d .*-j (DROP|REJECT)" % nodeport, text, re.M)
    if not m or int(m.group(1)) < len(conns):
        problems.append("the KUBE-EXTERNAL-SERVICES rule counted %s packets for %d attempts"
                        % (m.group(1) if m else "no", len(conns)))
    else:
        truth["filterRulePackets"] = int(m.group(1))

with open(truth_path, "w") as f:
    json.dump(truth, f, indent=2, sort_keys=True)
    f.write("\n")
print("lab:   %s: outcomes %s" % (shape, json.dumps(truth["outcomes"], sort_keys=True)), file=sys.stderr)
if problems:
    for p in problems[:10]:
        print("lab: CHECK FAILED: " + p, file=sys.stderr)
    sys.exit(1)
PY
    echo "externalTrafficPolicy: the clients connected to the node's LAN address ${ETP_NODE_IP}:${ETP_NODEPORT} (NodePort), not the ClusterIP; truth.json \"service\" carries the expected model (frontends, nodePort, healthCheckNodePort, per-backend local and expectedShareExternal, noLocalEndpoints, noEndpoints, masquerade), each connection its failure (timeout/refused) and backendSaw (the source address the pod saw)." >>"$out/README.md"
}
