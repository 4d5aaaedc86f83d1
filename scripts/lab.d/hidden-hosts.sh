# shellcheck shell=bash
# scripts/lab.d/hidden-hosts.sh — hosts behind a NAT gateway that differ on the wire, and a
# backend affinity cookie.
#
# Sourced by scripts/lab. One direct client and one MASQUERADE gateway hiding three hosts.
# The hosts differ the way a real population does (FIELD-NOTES: "What packets say about the
# hosts behind an address"): per-namespace net.ipv4.ip_default_ttl (64, 128, 64) and
# net.ipv4.tcp_timestamps (on, on, off), their own User-Agent and an X-Forwarded-For naming
# the host (as an L7 proxy would add). Every pod sets `route=<pod name>` (LAB_POD_COOKIE), so
# each cookie value belongs to one backend. No session affinity: connections spread.
# truth.json's `sources` says how many hosts stand behind each address.

scenario_hidden_hosts() {
    SC_DESCRIPTION="One direct client and one NAT gateway hiding three hosts that differ in initial TTL (64/128/64), TCP timestamps (on/on/off), User-Agent and X-Forwarded-For; every backend sets the cookie route=<pod>, an affinity cookie."
    SC_DIRECT_CLIENTS=1
    SC_DIRECT_CONNS=10
    SC_GATEWAYS=1
    SC_HOSTS_PER_GW=3
    SC_GW_CONNS=10
    SC_TRAFFIC_HOOK=hidden_hosts_traffic
    export LAB_POD_COOKIE=route
}

# hidden_hosts_traffic — like drive_traffic, with per-host stack settings and headers.
hidden_hosts_traffic() {
    local i pids=() ttl ts n=0
    local ttls=(64 128 64) tss=(1 1 0)
    mkdir -p "$WORK/clients"
    for ((i = 0; i < ${#CL_NAME[@]}; i++)); do
        local args=()
        if [[ ${CL_GW[i]} != - ]]; then
            ttl=${ttls[n % 3]} ts=${tss[n % 3]}
            n=$((n + 1))
            nsexec "${CL_NS[i]}" sysctl -qw "net.ipv4.ip_default_ttl=$ttl" "net.ipv4.tcp_timestamps=$ts"
            args=(--user-agent "lab-client/1 (${CL_NAME[i]}; ttl $ttl; ts $ts)" --forwarded-for "${CL_ADDR[i]}")
        fi
        start_bg "${CL_NS[i]}" "$WORK/clients/${CL_NAME[i]}.jsonl" "$WORK/clients/${CL_NAME[i]}.err" \
            python3 "$LAB_DIR/lab-client.py" --name "${CL_NAME[i]}" --target "${VIP}:${VPORT}" \
            --count "${CL_COUNT[i]}" --timeout 3 --pause 0.02 --deadline 30 "${args[@]}"
        pids+=("$BG_PID")
    done
    wait_clients "${pids[@]}"
    return 0
}
