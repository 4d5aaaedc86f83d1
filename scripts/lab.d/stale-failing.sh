# shellcheck shell=bash
# scripts/lab.d/stale-failing.sh — stale probabilities plus a backend that refuses connections.
#
# Sourced by scripts/lab. The rules carry the probabilities kube-proxy wrote for five endpoints
# (0.2, 0.25, 0.3333333333) on a service that has four, as in stale-probabilities, so the last
# endpoint, web-3, gets 40% of new connections. web-3's Pod is up (its address answers) but its
# server is stopped before the traffic starts: nothing listens on 8080, so the kernel answers
# each SYN with RST and the client sees "connection refused". That is what the node shows when
# kube-proxy no longer syncs its rules: a not-ready endpoint that it would have removed keeps
# receiving its (stale) share.
#
# Every refused connection went to web-3, the only endpoint without a listener; the run checks
# that against the node's own counters (the DNAT rule of each KUBE-SEP chain counts the new
# connections sent to its endpoint) and fails unless they agree. After the run truth.json gains
# per connection its `failure` ("refused" or null) and, for refused ones, the backend they went
# to; `failures` (refused connections per backend, as the clients saw them), `attempts`
# (connections per backend, served or refused), `dnatPackets` (each DNAT rule's packet counter)
# and `capture` (tcpdump's own packet counts, to check that node.pcap holds every packet).
# A refused connection's conntrack entry is destroyed at once, so only conntrack-E.txt (and
# node.pcap) record it; conntrack-L.txt holds the served connections.

readonly STALE_FAILING_POD=3   # index of the pod whose server is stopped (web-3, 40% by the rules)

scenario_stale_failing() {
    SC_DESCRIPTION="Stale probabilities plus a failing backend: four backends behind probabilities written for five (0.2, 0.25, 0.3333333333), so web-3 gets 40% of new connections, and web-3 refuses them (its server is stopped: the kernel answers every SYN with RST); five direct clients make 24 connections each and see about 40% of them refused."
    SC_PROBABILITIES="0.2000000000 0.2500000000 0.3333333333"
    SC_DIRECT_CLIENTS=5
    SC_DIRECT_CONNS=24
    SC_EXPECT_ALL_OK=0
    SC_CLIENT_TIMEOUT=2
    SC_TRAFFIC_HOOK=stale_failing_traffic
    SC_AFTER_HOOK=stale_failing_truth
}

# stale_failing_traffic — stops web-3's server, checks nothing listens there any more, drives
# the usual traffic, then waits for tcpdump to have every packet (lab_capture_settle).
stale_failing_traffic() {
    local i=$STALE_FAILING_POD ns="${PFX}p${STALE_FAILING_POD}"
    stop_pid "${POD_PIDS[i]}" TERM 3
    if nsexec "$ns" ss -Hltn "sport = :${POD_PORT}" 2>/dev/null | grep -q LISTEN; then
        die "pod ${POD_NAMES[i]} still listens on ${POD_PORT}"
    fi
    log "stale-failing: ${POD_NAMES[i]} (${BACKENDS[i]}) no longer listens"
    drive_traffic
    lab_capture_settle
}

# lab_capture_settle — waits until tcpdump has been handed every packet of the run. tcpdump
# reads through a TPACKET_V3 ring whose blocks the kernel hands over when full or after the
# block timeout (libpcap's timeout, 1000 ms in tcpdump); stopping it sooner loses the packets
# of the last, unfinished block. Shared by the scenarios in this folder.
lab_capture_settle() {
    sleep 1.5
}

# lab_capture_counts OUTDIR — tcpdump's statistics (it prints them when it exits on SIGINT,
# which scripts/lab sends before the after-hook) as JSON on stdout: packets captured, received
# by filter and dropped by the kernel, and the records in node.pcap. Fails the run if tcpdump
# dropped packets, did not report, or node.pcap holds a different number of records.
lab_capture_counts() {
    python3 - "$1/node.pcap" "$WORK/tcpdump.err" <<'PY'
import json, re, struct, sys

pcap, err = sys.argv[1], sys.argv[2]
text = open(err).read()
def stat(what):
    m = re.search(r"^(\d+) packets? %s" % what, text, re.M)
    return int(m.group(1)) if m else None
counts = {"captured": stat("captured"), "receivedByFilter": stat("received by filter"),
          "droppedByKernel": stat("dropped by kernel")}
# Records in the file: a pcap global header, then 16-byte record headers (incl_len at +8).
records = 0
with open(pcap, "rb") as f:
    head = f.read(24)
    magic = struct.unpack("<I", head[:4])[0]
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    while True:
        h = f.read(16)
        if len(h) < 16:
            break
        incl = struct.unpack(order + "I", h[8:12])[0]
        f.seek(incl, 1)
        records += 1
counts["packets"] = records
problems = []
if None in counts.values():
    problems.append("tcpdump did not report its statistics: %r" % text[-300:])
elif counts["droppedByKernel"] != 0:
    problems.append("tcpdump: %d packets dropped by kernel" % counts["droppedByKernel"])
elif counts["captured"] != records:
    problems.append("node.pcap holds %d packets, tcpdump captured %d" % (records, counts["captured"]))
for p in problems:
    print("lab: CHECK FAILED: " + p, file=sys.stderr)
print(json.dumps(counts, sort_keys=True))
sys.exit(1 if problems else 0)
PY
}

# stale_failing_truth OUTDIR — adds failures per backend to truth.json and fails the run unless
# every failure was a refusal that went to the stopped pod and the node's DNAT counters agree.
stale_failing_truth() {
    local out=$1 counts
    counts=$(lab_capture_counts "$out") || exit 1
    env WORK="$WORK" FAILING="${BACKENDS[STALE_FAILING_POD]}" CAPTURE="$counts" \
        PYTHONPATH="$LAB_DIR" python3 - "$out" <<'PY'
from lab_clients import client_rows, failure
import json, os, re, sys

E = os.environ
out, work, failing = sys.argv[1], E["WORK"], E["FAILING"]
truth_path = os.path.join(out, "truth.json")
truth = json.load(open(truth_path))
eps = [b["address"] for b in truth["service"]["backends"]]
pod_of = {b["address"]: b["pod"] for b in truth["service"]["backends"]}
problems = []

rows = client_rows(work)


for c in truth["connections"]:
    r = rows.get((c["client"], c["localPort"]), {})
    c["failure"] = None if c["ok"] else (failure(r.get("error")) or "other")
    if c["failure"] == "refused":
        # Only the stopped pod refuses (the others listen): that is where it went.
        c["backend"], c["pod"] = failing, pod_of[failing]
    elif not c["ok"]:
        problems.append("%s:%s failed with %s (%s)" % (c["client"], c["localPort"], c["failure"], r.get("error")))
    elif c["backend"] == failing:
        problems.append("%s:%s was served by the stopped pod" % (c["client"], c["localPort"]))

conns = truth["connections"]
failures = {ep: sum(1 for c in conns if c["failure"] and c["backend"] == ep) for ep in eps}
attempts = {ep: sum(1 for c in conns if c["backend"] == ep) for ep in eps}

# The node's own count of new connections per endpoint: the DNAT rule of each KUBE-SEP chain.
dnat = {}
for line in open(os.path.join(out, "iptables-save.txt")):
    m = re.match(r"^\[(\d+):\d+\] -A KUBE-SEP-\S+ .*-j DNAT --to-destination (\S+)", line)
    if m:
        dnat[m.group(2)] = int(m.group(1))
if dnat != attempts:
    problems.append("DNAT counters %s != connections per backend %s" % (dnat, attempts))
if failures[failing] < 5:
    problems.append("only %d refused connections" % failures[failing])

truth["failures"] = failures
truth["attempts"] = attempts
truth["dnatPackets"] = dnat
truth["capture"] = json.loads(E["CAPTURE"])
truth["outcomes"] = {k: sum(1 for c in conns if (c["failure"] or "ok") == k)
                     for k in sorted({c["failure"] or "ok" for c in conns})}
with open(truth_path, "w") as f:
    json.dump(truth, f, indent=2, sort_keys=True)
    f.write("\n")
print("lab:   stale-failing: refused per backend %s; node.pcap %d packets"
      % (json.dumps(failures, sort_keys=True), truth["capture"]["packets"]), file=sys.stderr)
if problems:
    for p in problems[:10]:
        print("lab: CHECK FAILED: " + p, file=sys.stderr)
    sys.exit(1)
PY
    echo "Failures: web-3 (${BACKENDS[STALE_FAILING_POD]}) has no listener, so every connection sent to it is refused (RST); truth.json has each connection's failure and backend, \`failures\` and \`attempts\` per backend, the DNAT rules' counters (\`dnatPackets\`, equal to \`attempts\`) and tcpdump's packet counts (\`capture\`). A refused connection's conntrack entry is destroyed at once: conntrack-E.txt records it, conntrack-L.txt does not." >>"$out/README.md"
}
