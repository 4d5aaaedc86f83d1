# scripts/lab.d/policy-and-probabilities.sh — rules scenarios for `lbscope rules`.
# Sourced by scripts/lab; defines scenario_* functions (see scenario_defaults there).

# Probabilities kube-proxy wrote for five endpoints (1/5, 1/4, 1/3 with %0.10f) left on a
# service that now has four: the cascade gives 20/20/20/40 instead of 25 each.
scenario_stale_probabilities() {
    SC_DESCRIPTION="Four backends behind probabilities written for five (0.2, 0.25, 0.3333333333): the last backend gets 40% of new connections and the others 20% each; six direct clients make 40 connections each."
    SC_PROBABILITIES="0.2000000000 0.2500000000 0.3333333333"
    SC_DIRECT_CLIENTS=6
    SC_DIRECT_CONNS=40
}
