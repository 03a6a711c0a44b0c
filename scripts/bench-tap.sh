#!/usr/bin/env bash
# Compares ways of opening a TAP device (benches/tap_open.rs): for each, two TAPs
# joined by a userspace copy loop start in namespace shoalx-tapbench and move to
# shoalx-tapa and shoalx-tapb, and iperf3 sends one TCP stream across for 8 s.
# Needs root; every namespace it makes is deleted at the end.
#   KINDS="tun-tap tun-rs tun-rs-offload ioctl" scripts/bench-tap.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

NAMESPACES=(shoalx-tapbench shoalx-tapa shoalx-tapb)
cleanup() {
  local ns
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

cargo bench --bench tap_open --no-run >/dev/null 2>&1
for kind in ${KINDS:-tun-tap tun-rs tun-rs-offload ioctl}; do
  cleanup
  for ns in "${NAMESPACES[@]}"; do ip netns add "$ns"; done
  out=$(mktemp)
  ip netns exec shoalx-tapbench cargo bench -q --bench tap_open -- "$kind" shxa shxb 12 >"$out" 2>&1 &
  pid=$!
  until grep -q ready "$out"; do sleep 0.2; done
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
  rate=$(ip netns exec shoalx-tapa iperf3 -c 10.9.0.2 -t 8 -J | jq -r \
    '.end.sum_received.bits_per_second / 1e9 * 100 | round / 100')
  wait "$pid"
  echo "$kind: one TCP stream $rate Gbit/s; $(tail -n 1 "$out")"
  rm -f "$out"
done
