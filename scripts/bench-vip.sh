#!/usr/bin/env bash
# East-west load balancing: a service's virtual IP measured against the same
# task reached directly over shoal's overlay, on the same lab in the same run
# (absolute figures move from machine to machine; the ratios are the result).
# A swarm of h1 (manager) and h2 (worker) and an overlay network `bench`:
#   web     nginx (1 worker, keep-alive, no access log; the config of
#           bench-mesh) serving a small page and a large file: 1 replica
#           pinned to h2, on bench;
#   client  `sleep infinity` pinned to h1, on bench; every test runs in its
#           task's network namespace (nsenter from h1; the lab shares the
#           machine's PID namespace).
# Paths, interleaved run by run:
#   vip     web's virtual IP on bench: the connection is taken by h1's VIP
#           balancer and carried from there to the task on h2;
#   direct  the web task's own address on bench: the overlay alone.
# Tests, each RUNS times (median taken):
#   keep-alive  wrk -t1 -c16 -d DURATION on the small page: requests/s
#   new conn    the same with "Connection: close": one connection per request
#   bulk        curl of a BULK_MB MB file (sparse: no disk involved) over one
#               connection: Gbit/s
# Prints each run, a table with the ratio vip/direct (higher is better; 1.00 =
# as fast as the overlay alone), then
#   keep-alive: X.XXx direct   (and new conn, bulk)
#
# usage: scripts/bench-vip.sh [--runs N]
# Environment: DURATION (seconds per wrk test, default 5), RUNS (default 3),
# BULK_MB (default 1024), SHOAL_BIN (the daemon, as in netlab/lab.sh). Run as
# root; installs missing tools through scripts/setup.sh --no-build. The lab
# (LAB=shoalbv), its namespaces and the tasks' are removed on every exit. All
# traffic stays inside the lab's namespaces.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export LAB=shoalbv
export LAB_DIR=${LAB_DIR:-/tmp/shoal-lab}
DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
BULK_MB=${BULK_MB:-1024}
MEASURE=bench-vip
TARGET=80            # nginx's port, in its task's namespace (and the VIP's)
CONNS=16             # wrk's connections
TASK_TIMEOUT=60      # seconds for the tasks to run and the paths to answer
REACH_TIMEOUT=30     # (measure-lib's reach)
NETWORK=bench
PAGE_TEXT='shoal bench-vip page'
# shellcheck source=scripts/measure-lib.sh
source scripts/measure-lib.sh

usage() {
  echo "usage: $0 [--runs N]   (env: DURATION RUNS BULK_MB SHOAL_BIN)" >&2
  exit 2
}

# Everything this script makes lives in the lab's namespaces and the tasks'
# (children of the lab's daemons): `lab down` removes it all.
measure_cleanup() { :; }

# --- the swarm --------------------------------------------------------------------

both_ready() {
  [[ $(dk 1 node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$') == 2 ]]
}

# running_task SERVICE NODE: the ID of SERVICE's task running on NODE.
running_task() {
  dk 1 service ps "$1" --no-trunc --filter desired-state=running \
    --format '{{.ID}} {{.Node}} {{.CurrentState}}' 2>/dev/null |
    awk -v node="$2" '$2 == node && $3 == "Running" {print $1; exit}' | grep .
}

# wait_task SERVICE NODE: its running task's ID, waiting (bounded) for it.
wait_task() {
  local deadline=$((SECONDS + TASK_TIMEOUT)) id
  until id=$(running_task "$1" "$2"); do
    if ((SECONDS >= deadline)); then
      dk 1 service ps --no-trunc "$1" >&2 || true
      die "service $1 has no task running on $2 after ${TASK_TIMEOUT}s"
    fi
    sleep 0.2
  done
  echo "$id"
}

CLIENT_PID=''

# make_swarm: h1 and h2 Ready, the network, web on h2 and client on h1 running;
# fills URL[vip], URL[direct] and CLIENT_PID.
make_swarm() {
  local conf out net web cl vip addr
  form_swarm worker 2
  wait_for "h1 and h2 Ready" "$TASK_TIMEOUT" both_ready
  dk 1 network create -d overlay "$NETWORK" >/dev/null || die "network create $NETWORK failed"
  net=$(dk 1 network inspect "$NETWORK" --format '{{.ID}}') || die "network inspect $NETWORK failed"
  conf=$(nginx_conf web)
  out=$(dk 1 service create --detach --name web --replicas 1 --constraint node.hostname==h2 \
    --network "$NETWORK" --stop-grace-period 1s nginx -c "$conf" 2>&1) ||
    die "service create web failed: $out"
  out=$(dk 1 service create --detach --name client --replicas 1 --constraint node.hostname==h1 \
    --network "$NETWORK" --stop-grace-period 1s sleep infinity 2>&1) ||
    die "service create client failed: $out"
  web=$(wait_task web h2)
  cl=$(wait_task client h1)
  vip=$(dk 1 service inspect web --format \
    "{{range .Endpoint.VirtualIPs}}{{if eq .NetworkID \"$net\"}}{{.Addr}}{{end}}{{end}}")
  addr=$(dk 1 inspect --type task "$web" --format \
    '{{range .NetworksAttachments}}{{range .Addresses}}{{.}} {{end}}{{end}}')
  CLIENT_PID=$(dk 1 inspect --type task "$cl" --format '{{.Status.ContainerStatus.PID}}')
  [[ $vip =~ ^[0-9.]+/[0-9]+$ ]] || die "service web has no virtual IP on $NETWORK: '$vip'"
  [[ $addr =~ ^[0-9.]+/[0-9]+\ $ ]] || die "web's task $web has not one address: '$addr'"
  [[ $CLIENT_PID =~ ^[1-9][0-9]*$ ]] || die "client's task $cl has no PID: '$CLIENT_PID'"
  URL[vip]=http://${vip%/*}:$TARGET
  URL[direct]=http://${addr%/* }:$TARGET
  tune_client
  wait_for "web's task answers at ${URL[direct]}" "$TASK_TIMEOUT" answers direct
  wait_for "web's virtual IP answers at ${URL[vip]}" "$TASK_TIMEOUT" answers vip
}

# client CMD...: CMD in the client task's network namespace (on h1).
client() { lab exec 1 nsenter --target "$CLIENT_PID" --net "$@"; }

# The new-connection test opens many short connections: a wide port range and
# TIME_WAIT reuse, settings of the client task's own namespace.
tune_client() {
  client sysctl -qw net.ipv4.ip_local_port_range="10000 65000" net.ipv4.tcp_tw_reuse=1
}

# --- running the tests --------------------------------------------------------------

measure() { http_measure "$@"; }

summary() {
  local test
  medians
  printf '\n%-24s %10s %10s %12s\n' "median of $RUNS" vip direct vip/direct
  for test in "${TESTS[@]}"; do
    printf '%-24s %10s %10s %12s\n' "${LABEL[$test]} (${UNIT[$test]})" \
      "${MED[$test vip]}" "${MED[$test direct]}" "$(ratio "$test" vip direct)"
  done
  echo "wrk -t1 -c$CONNS -d${DURATION}s; bulk: one ${BULK_MB} MB download; ratios: higher is better, 1.00 = the overlay alone"
  echo "vip ${URL[vip]}, direct ${URL[direct]}"
  context
  for test in "${TESTS[@]}"; do
    echo "${LABEL[$test]}: $(ratio "$test" vip direct)x direct"
  done
}

main() {
  parse_args "$@"
  [[ $BULK_MB =~ ^[1-9][0-9]*$ ]] || die "BULK_MB must be a positive integer, got '$BULK_MB'"
  measure_two_hosts curl ip nginx wrk sysctl truncate nsenter docker
  site
  make_swarm
  PATHS=(vip direct)
  echo "lab $LAB: ${PATHS[*]}, client task on h1 -> web's task on h2 over $NETWORK, $RUNS runs per test"
  run_all
  summary
}

main "$@"
