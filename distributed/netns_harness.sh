#!/usr/bin/env bash
# Multi-host test harness on one machine: each "host" is a network namespace.
#
#   sudo distributed/netns_harness.sh [SCENARIO] [WORKERS] [LINK_DELAY]
#
# The coordinator runs in namespace <p>c behind a bridge (10.77.0.1); each
# worker runs in its own namespace <p>w<i> (10.77.0.<i+1>), joined to the
# bridge by a veth pair — separate network stacks, real TCP between them.
# LINK_DELAY (e.g. 2ms, needs tc/netem) adds latency on every worker's link.
# The script runs the scenario in-process, then across the namespaces, and
# compares the two event logs byte for byte. Exit status 0 = identical.
# Everything it creates is removed on exit. Needs root (ip netns).
set -euo pipefail

SCEN=${1:-scenarios/quickstart.toml}
N=${2:-2}
DELAY=${3:-}
PY=${PYTHON:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
P=asn$$            # short: interface names are limited to 15 characters
OUT=$(mktemp -d)
PORT=5555

cleanup() {
    set +e
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null; done
    for i in $(seq 1 "$N"); do ip netns del "${P}w$i" 2>/dev/null; done
    ip netns del "${P}c" 2>/dev/null
    rm -rf "$OUT"
}
trap cleanup EXIT

ip netns add "${P}c"
ip -n "${P}c" link set lo up
ip -n "${P}c" link add br0 type bridge
ip -n "${P}c" addr add 10.77.0.1/24 dev br0
ip -n "${P}c" link set br0 up
for i in $(seq 1 "$N"); do
    ns="${P}w$i"
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "${P}v$i" type veth peer name "${P}p$i"
    ip link set "${P}v$i" netns "${P}c"
    ip link set "${P}p$i" netns "$ns"
    ip -n "${P}c" link set "${P}v$i" master br0 up
    ip -n "$ns" addr add "10.77.0.$((i + 1))/24" dev "${P}p$i"
    ip -n "$ns" link set "${P}p$i" up
    if [ -n "$DELAY" ]; then
        ip netns exec "$ns" tc qdisc add dev "${P}p$i" root netem delay "$DELAY" \
            || echo "warning: tc netem is not available here; links without added delay"
    fi
done
echo "hosts: coordinator ${P}c (10.77.0.1), workers ${P}w1..${P}w$N (10.77.0.2..$((N + 1)))"

# a cluster file: N remote workers, none started by the coordinator itself
{
    echo "[coordinator]"
    echo "bind = \"tcp://10.77.0.1:$PORT\""
    echo "timeout = 10"
    echo "join_timeout = 60"
    for i in $(seq 1 "$N"); do
        echo "[[hosts]]"
        echo "name = \"${P}w$i\""
        echo "workers = 1"
    done
} > "$OUT/cluster.toml"

cd "$ROOT"
t0=$(date +%s.%N)
"$PY" -m asyncnet run "$SCEN" -q --log "$OUT/ref.log" > "$OUT/ref.txt"
t1=$(date +%s.%N)
ip netns exec "${P}c" "$PY" -m asyncnet run "$SCEN" -q --cluster "$OUT/cluster.toml" \
    --log "$OUT/dist.log" > "$OUT/dist.txt" &
coord=$!
for i in $(seq 1 "$N"); do
    ip netns exec "${P}w$i" "$PY" -m asyncnet worker --connect "tcp://10.77.0.1:$PORT" \
        --wait 60 &
done
wait "$coord"
t2=$(date +%s.%N)
grep -E "^(cluster|worker)" "$OUT/dist.txt" || true
printf 'in-process %.2f s, across %d namespaces %.2f s (incl. start-up)\n' \
    "$(echo "$t1 - $t0" | bc)" "$N" "$(echo "$t2 - $t1" | bc)"
if cmp -s "$OUT/ref.log" "$OUT/dist.log"; then
    echo "IDENTICAL: $(stat -c %s "$OUT/ref.log") bytes, $("$PY" -m asyncnet stats "$OUT/dist.log" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["messages"]["total"])') messages"
else
    echo "DIFFERENT logs"; exit 1
fi
