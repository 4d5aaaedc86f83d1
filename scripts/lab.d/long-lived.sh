# shellcheck shell=bash
# scripts/lab.d/long-lived.sh — balanced connections, unbalanced requests: keep-alive clients.
#
# Sourced by scripts/lab. kube-proxy's rules balance new connections, not requests. Four direct
# clients make 10 short connections each (one GET with "Connection: close"); two more clients
# each hold one HTTP/1.1 keep-alive connection that carries 40 GETs. Connections spread evenly
# over the four backends (the run checks it), but the backends that got a keep-alive connection
# serve most requests and bytes. The pods run with LAB_POD_KEEPALIVE=1 (keep a connection open
# unless the client asks to close it); plain HTTP, so a capture can count requests.
#
# After the run truth.json gains per connection `requests` (responses received on it) and per
# backend `requests` (sum over its connections), and `capture` (tcpdump's own packet counts; the
# helpers lab_capture_settle and lab_capture_counts are in stale-failing.sh).

readonly LONG_LIVED_SHORT_CLIENTS=4 LONG_LIVED_SHORT_CONNS=10
readonly LONG_LIVED_KEEPALIVE_CLIENTS=2 LONG_LIVED_REQUESTS=40

scenario_long_lived() {
    SC_DESCRIPTION="Long-lived connections: four direct clients make 10 short connections each (one request per connection) and two more each hold one HTTP/1.1 keep-alive connection carrying 40 requests; kube-proxy spreads the 42 connections evenly over four backends, but the backends that got a keep-alive connection serve most of the 120 requests."
    SC_DIRECT_CLIENTS=$((LONG_LIVED_SHORT_CLIENTS + LONG_LIVED_KEEPALIVE_CLIENTS))
    SC_DIRECT_CONNS=$LONG_LIVED_SHORT_CONNS
    SC_TRAFFIC_HOOK=long_lived_traffic
    SC_AFTER_HOOK=long_lived_truth
    export LAB_POD_KEEPALIVE=1
}

# long_lived_traffic — all clients start together; the last LONG_LIVED_KEEPALIVE_CLIENTS make
# one keep-alive connection each instead of short ones.
long_lived_traffic() {
    local i pids=() args
    mkdir -p "$WORK/clients"
    for ((i = 0; i < ${#CL_NAME[@]}; i++)); do
        args=(--count "${CL_COUNT[i]}")
        if ((i >= LONG_LIVED_SHORT_CLIENTS)); then
            CL_COUNT[i]=1   # write_truth checks each client made CL_COUNT connections
            args=(--count 1 --requests "$LONG_LIVED_REQUESTS" --request-pause 0.02)
        fi
        start_bg "${CL_NS[i]}" "$WORK/clients/${CL_NAME[i]}.jsonl" "$WORK/clients/${CL_NAME[i]}.err" \
            python3 "$LAB_DIR/lab-client.py" --name "${CL_NAME[i]}" --target "${VIP}:${VPORT}" \
            --timeout 3 --pause 0.02 --deadline 30 "${args[@]}"
        pids+=("$BG_PID")
    done
    wait_clients "${pids[@]}"
    lab_capture_settle
}

# long_lived_truth OUTDIR — adds requests per connection and per backend to truth.json; fails
# the run unless connections are balanced (chi-square against an equal split, p >= 0.01) and
# requests are not (the busiest backend serves at least twice the requests of the idlest).
long_lived_truth() {
    local out=$1 counts
    counts=$(lab_capture_counts "$out") || exit 1
    env WORK="$WORK" CAPTURE="$counts" REQUESTS="$LONG_LIVED_REQUESTS" PYTHONPATH="$LAB_DIR" python3 - "$out" <<'PY'
from lab_clients import client_rows
import json, os, sys

E = os.environ
out, work = sys.argv[1], E["WORK"]
truth_path = os.path.join(out, "truth.json")
truth = json.load(open(truth_path))
eps = [b["address"] for b in truth["service"]["backends"]]
problems = []

rows = client_rows(work)
for c in truth["connections"]:
    r = rows.get((c["client"], c["localPort"]), {})
    c["requests"] = r.get("requests", 1 if c["ok"] else 0)
long = [c for c in truth["connections"] if c["requests"] > 1]
if len(long) != 2 or any(c["requests"] != int(E["REQUESTS"]) for c in long):
    problems.append("keep-alive connections: %s" % [(c["client"], c["requests"]) for c in long])

conns = truth["backends"]
requests = {ep: sum(c["requests"] for c in truth["connections"] if c["backend"] == ep) for ep in eps}
n = sum(conns.values())
chi2 = sum((conns[ep] - n / len(eps)) ** 2 / (n / len(eps)) for ep in eps)
# 11.345 is chi-square's 99th percentile with 3 degrees of freedom (four backends).
if len(eps) != 4 or chi2 >= 11.345:
    problems.append("connections not balanced this run (chi2 %.2f): %s" % (chi2, conns))
if max(requests.values()) < 2 * max(1, min(requests.values())):
    problems.append("requests came out balanced: %s" % requests)

truth["requests"] = requests
truth["connectionsChiSquare"] = round(chi2, 4)
truth["capture"] = json.loads(E["CAPTURE"])
with open(truth_path, "w") as f:
    json.dump(truth, f, indent=2, sort_keys=True)
    f.write("\n")
print("lab:   long-lived: connections %s, requests %s (chi2 %.2f); node.pcap %d packets"
      % (json.dumps(conns, sort_keys=True), json.dumps(requests, sort_keys=True), chi2,
         truth["capture"]["packets"]), file=sys.stderr)
if problems:
    for p in problems:
        print("lab: CHECK FAILED: " + p, file=sys.stderr)
    sys.exit(1)
PY
    echo "Keep-alive: the pods keep a connection open unless the client asks to close it (LAB_POD_KEEPALIVE=1); truth.json has each connection's \`requests\`, \`requests\` per backend and tcpdump's packet counts (\`capture\`)." >>"$out/README.md"
}
