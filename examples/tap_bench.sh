#!/bin/sh
# Runs examples/tap_bench.rs for each way of opening a TAP: the two TAPs start in namespace
# shoalx-tapbench, move to shoalx-tapa and shoalx-tapb, and iperf3 sends one TCP stream across
# for 8 seconds. Needs root; every namespace it makes is deleted at the end.
set -eu
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/examples/tap_bench}
cleanup() {
    for ns in shoalx-tapbench shoalx-tapa shoalx-tapb; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
for kind in ${KINDS:-tun-tap tun-rs tun-rs-offload ioctl}; do
    cleanup
    for ns in shoalx-tapbench shoalx-tapa shoalx-tapb; do ip netns add "$ns"; done
    ip netns exec shoalx-tapbench "$BIN" "$kind" shxa shxb 12 > /tmp/shoalx-tapbench.out &
    pid=$!
    sleep 1
    ip -n shoalx-tapbench link set shxa netns shoalx-tapa
    ip -n shoalx-tapbench link set shxb netns shoalx-tapb
    ip -n shoalx-tapa addr add 10.9.0.1/24 dev shxa
    ip -n shoalx-tapb addr add 10.9.0.2/24 dev shxb
    for side in a b; do
        ip -n "shoalx-tap$side" link set "shx$side" up
        ip -n "shoalx-tap$side" link set lo up
    done
    ip netns exec shoalx-tapb iperf3 -s -1 -D
    sleep 0.3
    rate=$(ip netns exec shoalx-tapa iperf3 -c 10.9.0.2 -t 8 -J | python3 -c \
        'import json,sys; print("%.2f Gbit/s" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')
    wait "$pid"
    echo "$kind: iperf3 one TCP stream $rate; $(cat /tmp/shoalx-tapbench.out | tail -1)"
done
