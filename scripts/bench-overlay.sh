#!/usr/bin/env bash
# The overlay data plane, measured against the kernel's own VXLAN on the same
# two lab hosts in the same run (absolute figures move from machine to machine;
# the ratio is the result). Between an endpoint on h1 and one on h2:
#   shoal   a swarm of h1 (manager) and h2 (worker), overlay network benchnet;
#           servers are services on h2 (iperf3 -s; sockperf server), the client
#           runs inside the network namespace of a `sleep infinity` task on h1
#           (nsenter), to the server task's overlay address;
#   kernel  on each host a bridge and a kernel vxlan device (VNI 42, UDP 4790,
#           beside shoal's 4789), and an endpoint namespace on a veth into that
#           bridge: 10.99.0.1 on h1, 10.99.0.2 on h2, MTU 1450.
# Tests, each RUNS times (median taken), paths interleaved run by run:
#   one stream    iperf3 -t DURATION, 1 TCP stream, receiver's bits/s
#   four streams  iperf3 -t DURATION -P 4, receiver's bits/s summed
#   latency       sockperf ping-pong --tcp, 64-byte messages over one
#                 connection for DURATION s, median round trip in us
# Prints each run, a table (ratios: shoal/kernel for throughput,
# kernel/shoal for latency: higher is better for both), then
#   one stream: X.XXx kernel VXLAN   (and four streams, latency)
#
# usage: scripts/bench-overlay.sh [--runs N] [--kernel-only]
#   --kernel-only  the kernel path alone (no daemons, no docker CLI needed)
# Environment: DURATION (seconds per test, default 5), RUNS (default 3),
# SHOAL_BIN (the daemon, as in netlab/lab.sh). Run as root; installs missing
# tools through scripts/setup.sh --no-build. The lab (LAB=shoalbo) and the
# endpoint namespaces are removed on every exit.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export LAB=shoalbo
export LAB_DIR=${LAB_DIR:-/tmp/shoal-lab}
DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
MEASURE=bench-overlay
API=http://localhost/v1.41
NET=benchnet
IPERF_PORT=5201
RR_PORT=11111
RR_MSG=64            # bytes per request and per response
TASK_TIMEOUT=60      # seconds for a service's task to run
REACH_TIMEOUT=30     # seconds for a server to accept TCP over a path
declare -A KADDR=([1]=10.99.0.1 [2]=10.99.0.2)
# shellcheck source=scripts/measure-lib.sh
source scripts/measure-lib.sh

usage() { echo "usage: $0 [--runs N] [--kernel-only]   (env: DURATION RUNS SHOAL_BIN)" >&2; exit 2; }

REFERENCE_FLAG=--kernel-only

# --- the kernel VXLAN path (measure-lib.sh) ----------------------------------

measure_cleanup() { kernel_cleanup; }

# kernel_servers: iperf3 and sockperf servers in h2's endpoint, in the
# background (measure_cleanup kills them with their namespace).
kernel_servers() {
  local ep
  ep=$(ep_ns 2)
  ip netns exec "$ep" iperf3 -s -B "${KADDR[2]}" -p "$IPERF_PORT" >/dev/null 2>&1 &
  ip netns exec "$ep" sockperf server --tcp -i "${KADDR[2]}" -p "$RR_PORT" >/dev/null 2>&1 &
  disown -a   # no "Killed" job notices when measure_cleanup ends them
  wait_for "iperf3 and sockperf listening in $ep" 10 listening ip netns exec "$ep"
}

make_kernel_path() {
  local i
  for i in 1 2; do
    kernel_vxlan "$i" $((3 - i))
    kernel_endpoint "$i" "${KADDR[$i]}/24"
  done
  kernel_servers
  wait_for "TCP from $(ep_ns 1) to ${KADDR[2]} over kernel VXLAN" "$REACH_TIMEOUT" \
    reachable kernel
}

# --- the shoal overlay path -------------------------------------------------

get() { curl -sf --max-time 5 --unix-socket "${SOCK[1]}" "$API$1"; }

# A swarm of 2: h1 inits (manager), h2 joins as a worker.
make_swarm() {
  form_swarm worker 2
  wait_for "h1 and h2 Ready" "$TASK_TIMEOUT" both_ready
}

both_ready() {
  get /nodes | jq -e '[.[] | select(.Status.State == "ready")] | length == 2' >/dev/null
}

# service NAME HOST PROGRAM...: a one-replica service on benchnet pinned to host
# HOST (lab.sh names each daemon's node h<I>).
# The CLI's output is shown only on failure (it warns that the "image" has no
# registry digest: the process executor's images are host programs).
service() {
  local out
  out=$(dk 1 service create --detach --name "$1" --network "$NET" --replicas 1 \
    --constraint "node.hostname==h$2" --stop-grace-period 1s "${@:3}" 2>&1) ||
    die "service create $1 (${*:3}) on $NET failed: $out"
}

# running_task SERVICE: its task wanted running that runs, with a PID, as JSON.
running_task() {
  local filters
  filters=$(jq -rn --arg s "$1" '{service: [$s], "desired-state": ["running"]} | tojson | @uri')
  get "/tasks?filters=$filters" | jq -ec 'first(.[] | select(.Status.State == "running"
    and (.Status.ContainerStatus.PID // 0) > 0))'
}

# task_of SERVICE: wait (bounded) for its running task; prints "PID ADDRESS".
# Dies with what the manager says about the service's tasks on a time-out.
task_of() {
  local task deadline=$((SECONDS + TASK_TIMEOUT))
  until task=$(running_task "$1"); do
    if ((SECONDS >= deadline)); then
      echo "$MEASURE: service $1 has no running task after ${TASK_TIMEOUT}s; service ps:" >&2
      dk 1 service ps --no-trunc "$1" >&2 || true
      die "service $1 did not start"
    fi
    sleep 0.2
  done
  # The attachment to benchnet (or the only one), its address without /prefix.
  jq -er --arg n "$NET" '
    (first(.NetworksAttachments[]? | select(.Network.Spec.Name == $n))
      // .NetworksAttachments[0]?) as $a
    | "\(.Status.ContainerStatus.PID) \($a.Addresses[0] // "none" | sub("/[0-9]+$"; ""))"' \
    <<<"$task" || die "cannot read PID and address of $1's task: $task"
}

# own_netns PID I: the task has a network namespace of its own, not host I's
# (else nsenter would measure the underlay, not the overlay).
own_netns() {
  local task host
  task=$(readlink "/proc/$1/ns/net") || die "task process $1 is gone"
  host="net:[$(stat -L -c %i "/run/netns/$(host_ns "$2")")]"
  [[ $task != "$host" ]] || die "task pid $1 runs in h$2's network namespace: no overlay attached"
}

CLI_PID=''
# "PATH SERVER" -> the address its client connects to (SERVER: iperf or rr).
declare -A ADDR=([kernel iperf]=${KADDR[2]} [kernel rr]=${KADDR[2]})

# serving SERVICE PORT: wait for its task; check it sits in a network
# namespace of its own on h2 with a socket listening on PORT; record its address.
serving() {
  local task pid addr
  task=$(task_of "$1")
  pid=${task%% *} addr=${task#* }
  [[ $addr =~ ^[0-9]+(\.[0-9]+){3}$ ]] || die "$1's task has no address on $NET ('$addr')"
  own_netns "$pid" 2
  wait_for "$1's task listening on $2" "$TASK_TIMEOUT" listening_port "$2" nsenter --target "$pid" --net
  echo "$addr"
}

make_shoal_path() {
  make_swarm
  dk 1 network create -d overlay "$NET" >/dev/null ||
    die "docker network create -d overlay $NET failed: has this shoal overlay networks? (--kernel-only measures the kernel path alone)"
  service bsrv 2 iperf3 -s -p "$IPERF_PORT"
  service blat 2 sockperf server --tcp -i 0.0.0.0 -p "$RR_PORT"
  service bcli 1 sleep infinity
  ADDR[shoal iperf]=$(serving bsrv "$IPERF_PORT")
  ADDR[shoal rr]=$(serving blat "$RR_PORT")
  local cli
  cli=$(task_of bcli)
  CLI_PID=${cli%% *}
  own_netns "$CLI_PID" 1
  wait_for "TCP from bcli's task to blat at ${ADDR[shoal rr]} over the overlay" "$REACH_TIMEOUT" \
    reachable shoal
}

# --- running the tests --------------------------------------------------------

# on PATH CMD...: run CMD as the client endpoint of PATH (kernel or shoal).
on() {
  case $1 in
    kernel) ip netns exec "$(ep_ns 1)" "${@:2}" ;;
    shoal) nsenter --target "$CLI_PID" --net "${@:2}" ;;
  esac
}

listening() { listening_port "$IPERF_PORT" "$@" && listening_port "$RR_PORT" "$@"; }

# reachable PATH: a TCP connection to PATH's latency server gets through
# (sockperf's server shrugs off a bare connect; iperf3's would log an error).
reachable() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  on "$1" timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "${ADDR[$1 rr]}" "$RR_PORT" 2>/dev/null
}

# iperf PATH STREAMS: receiver's throughput in Gbit/s.
iperf() {
  local json
  json=$(on "$1" timeout $((DURATION + 30)) iperf3 -c "${ADDR[$1 iperf]}" -p "$IPERF_PORT" \
    -t "$DURATION" -P "$2" -J --connect-timeout 3000) ||
    die "iperf3 over $1 (-P $2) failed: $(jq -r '.error // empty' <<<"$json" 2>/dev/null)"
  jq -er '.end.sum_received.bits_per_second / 1e9 | . * 100 | round / 100' <<<"$json" ||
    die "iperf3 over $1: no receiver figure in its JSON"
}

# rr PATH: median round trip in us of 64-byte TCP ping-pong over one connection.
rr() {
  local out p50
  out=$(on "$1" timeout $((DURATION + 30)) sockperf ping-pong --tcp -i "${ADDR[$1 rr]}" \
    -p "$RR_PORT" -m "$RR_MSG" -t "$DURATION" --full-rtt 2>&1) ||
    die "sockperf over $1 failed: $(tail -n 3 <<<"$out")"
  p50=$(awk '/percentile 50.000 =/ {print $NF}' <<<"$out")
  [[ $p50 =~ ^[0-9.]+$ ]] || die "sockperf over $1: no median in its output"
  printf '%.1f\n' "$p50"
}

measure() {  # measure TEST PATH: one figure
  case $1 in
    one) iperf "$2" 1 ;;
    four) iperf "$2" 4 ;;
    rr) rr "$2" ;;
  esac
}

declare -A FIG=()        # "TEST PATH" -> space-separated figures of each run
declare -A UNIT=([one]=Gbit/s [four]=Gbit/s [rr]=us)
declare -A LABEL=([one]='one stream' [four]='four streams' [rr]='latency')
TESTS=(one four rr)
PATHS=()

# ratio TEST: shoal/kernel for throughput, kernel/shoal for latency (higher
# is better either way); "n/a" without the shoal path.
ratio() {
  local s=${MED[$1 shoal]:-} k=${MED[$1 kernel]}
  [[ -n $s ]] || { echo n/a; return; }
  if [[ $1 == rr ]]; then awk -v a="$k" -v b="$s" 'BEGIN { printf "%.2f", a / b }'
  else awk -v a="$s" -v b="$k" 'BEGIN { printf "%.2f", a / b }'; fi
}

summary() {
  local test
  medians
  printf '\n%-26s %12s %12s %8s\n' "median of $RUNS, ${DURATION}s each" shoal 'kernel VXLAN' ratio
  for test in "${TESTS[@]}"; do
    printf '%-26s %12s %12s %8s\n' "${LABEL[$test]} (${UNIT[$test]})" \
      "${MED[$test shoal]:-n/a}" "${MED[$test kernel]}" "$(ratio "$test")"
  done
  echo "ratio: shoal/kernel for throughput, kernel/shoal for round-trip time: higher is better, 1.00 = kernel VXLAN"
  context
  for test in "${TESTS[@]}"; do
    local r
    r=$(ratio "$test")
    if [[ $r == n/a ]]; then
      echo "${LABEL[$test]}: n/a (--kernel-only; kernel VXLAN ${MED[$test kernel]} ${UNIT[$test]})"
    else
      echo "${LABEL[$test]}: ${r}x kernel VXLAN"
    fi
  done
}

main() {
  parse_args "$@"
  local tools=(curl jq ip iperf3 sockperf nsenter ss)
  ((REFERENCE_ONLY)) || tools+=(docker)
  measure_two_hosts "${tools[@]}"
  make_kernel_path
  PATHS=(kernel)
  if ((!REFERENCE_ONLY)); then
    make_shoal_path
    PATHS=(shoal kernel)
  fi
  echo "lab $LAB: ${PATHS[*]} between h1 and h2, $RUNS runs of ${DURATION}s per test"
  run_all
  summary
}

main "$@"
