#!/usr/bin/env bash
# The ingress routing mesh, measured against the kernel reached directly and
# against HAProxy on the same lab in the same run (absolute figures move from
# machine to machine; the ratios are the result). A lab of h1 and h2 and the
# lab's client namespace cl; the backend is nginx (1 worker, keep-alive, no
# access log) serving a small page and a large file, always on h2:
#   shoal    a swarm of h1 (manager) and h2 (worker); the backend is a service
#            of 1 replica pinned to h2, published 8080:80 through the mesh;
#            the client connects to h1's address:8080, so every connection is
#            taken by h1's daemon and carried over shoal's overlay to h2;
#   haproxy  HAProxy 2.6 (mode tcp, nbthread 1) in h1's namespace on port 8081,
#            forwarding to the same program in an endpoint namespace on h2
#            behind kernel VXLAN (VNI 42, UDP 4790; scripts/measure-lib.sh);
#   direct   the client reaches that endpoint itself, routed through h1's
#            kernel (h1 forwards between its eth0 and the VXLAN bridge).
# Tests, each RUNS times (median taken), paths interleaved run by run:
#   keep-alive  wrk -t1 -c16 -d DURATION on the small page: requests/s
#   new conn    the same with "Connection: close": one connection per request
#   bulk        curl of a BULK_MB MB file (sparse: no disk involved) over one
#               connection: Gbit/s
# Prints each run, a table with the ratios shoal/HAProxy and shoal/direct
# (higher is better; 1.00 = as fast as the reference), then
#   keep-alive: X.XXx HAProxy, X.XXx direct   (and new conn, bulk)
#
# usage: scripts/bench-mesh.sh [--runs N] [--reference-only]
#   --reference-only  direct and HAProxy alone (no daemons, no docker CLI needed)
# Environment: DURATION (seconds per wrk test, default 5), RUNS (default 3),
# BULK_MB (default 1024), SHOAL_BIN (the daemon, as in netlab/lab.sh). Run as
# root; installs missing tools through scripts/setup.sh --no-build. The lab
# (LAB=shoalbm) and the endpoint namespace are removed on every exit. All
# traffic stays inside the lab's namespaces.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export LAB=shoalbm
export LAB_DIR=${LAB_DIR:-/tmp/shoal-lab}
DURATION=${DURATION:-5}
RUNS=${RUNS:-3}
BULK_MB=${BULK_MB:-1024}
MEASURE=bench-mesh
PUBLISHED=8080       # the mesh's port on every node
HAPROXY_PORT=8081    # HAProxy's, on h1
TARGET=80            # the backend's, in its own namespace
CONNS=16             # wrk's connections
TASK_TIMEOUT=60      # seconds for the service's task to run and the mesh to answer
REACH_TIMEOUT=30     # seconds for a path to answer HTTP
KNET=10.99.0         # the kernel VXLAN's subnet: .1 on h1's bridge, .2 the backend
BACKEND=$KNET.2
PAGE_TEXT='shoal bench-mesh page'
# shellcheck source=scripts/measure-lib.sh
source scripts/measure-lib.sh

usage() {
  echo "usage: $0 [--runs N] [--reference-only]   (env: DURATION RUNS BULK_MB SHOAL_BIN)" >&2
  exit 2
}

REFERENCE_FLAG=--reference-only

measure_cleanup() { kernel_cleanup; }

# --- the kernel paths -----------------------------------------------------------

# make_reference: kernel VXLAN between h1 and h2; the backend in h2's endpoint
# namespace (default route: h1's bridge address); h1 forwards for the client;
# HAProxy in h1's namespace.
make_reference() {
  local h1 ep conf
  h1=$(host_ns 1) ep=$(ep_ns 2)
  kernel_vxlan 1 2
  kernel_vxlan 2 1
  ip -n "$h1" addr add "$KNET.1/24" dev kbr0
  ip netns exec "$h1" sysctl -qw net.ipv4.ip_forward=1
  kernel_endpoint 2 "$BACKEND/24"
  ip -n "$ep" route add default via "$KNET.1"
  ip -n "$(ns_of_client)" route add "$KNET.0/24" via "$(lab addr 1)"

  conf=$(nginx_conf direct)
  ip netns exec "$ep" nginx -c "$conf" >>"$WORK/nginx-direct.log" 2>&1 &
  conf=$WORK/haproxy.cfg
  cat >"$conf" <<EOF
global
  nbthread 1
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 2m
  timeout server 2m
listen mesh-reference
  bind $(lab addr 1):$HAPROXY_PORT
  server backend $BACKEND:$TARGET
EOF
  haproxy -c -q -f "$conf" || die "haproxy rejects its config $conf"
  ip netns exec "$h1" haproxy -db -f "$conf" >>"$WORK/haproxy.log" 2>&1 &
  disown -a   # no "Killed" job notices when the clean-up ends them
  reach direct "the backend in $ep over kernel VXLAN" "$WORK/nginx-direct.log"
  reach haproxy "HAProxy on h1:$HAPROXY_PORT" "$WORK/haproxy.log"
}


ns_of_client() { echo "$LAB-cl"; }

# The client namespace opens many short connections (one per request in the
# new-connection test): a wide port range and TIME_WAIT reuse keep it from
# running out of ports over several runs. Both are settings of its namespace.
tune_client() {
  ip netns exec "$(ns_of_client)" sysctl -qw net.ipv4.ip_local_port_range="10000 65000" \
    net.ipv4.tcp_tw_reuse=1
}

# --- the shoal path ---------------------------------------------------------------

# A swarm of 2, h1 manager, h2 worker, both Ready; the backend as a service on
# h2 published through the mesh; the mesh answers on h1.
make_shoal() {
  local conf out
  form_swarm worker 2
  wait_for "h1 and h2 Ready" "$TASK_TIMEOUT" both_ready
  conf=$(nginx_conf shoal)
  out=$(dk 1 service create --detach --name web --replicas 1 --constraint node.hostname==h2 \
    --publish "published=$PUBLISHED,target=$TARGET" --stop-grace-period 1s \
    nginx -c "$conf" 2>&1) || die "service create web (published $PUBLISHED:$TARGET) failed: $out"
  local deadline=$((SECONDS + TASK_TIMEOUT))
  until web_runs_on_h2; do
    if ((SECONDS >= deadline)); then
      dk 1 service ps --no-trunc web >&2 || true
      die "service web has no task running on h2 after ${TASK_TIMEOUT}s"
    fi
    sleep 0.2
  done
  local ports
  ports=$(dk 1 service inspect web --format '{{json .Endpoint.Ports}}') || ports='?'
  wait_for "the mesh on h1:$PUBLISHED answers (service web's Endpoint.Ports: $ports)" \
    "$TASK_TIMEOUT" answers shoal
}

both_ready() {
  [[ $(dk 1 node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$') == 2 ]]
}

web_runs_on_h2() {
  dk 1 service ps web --filter desired-state=running --format '{{.Node}} {{.CurrentState}}' \
    2>/dev/null | grep -q '^h2 Running'
}

# --- running the tests --------------------------------------------------------------

client() { ip netns exec "$(ns_of_client)" "$@"; }

measure() { http_measure "$@"; }

summary() {
  local test
  medians
  printf '\n%-24s %10s %10s %10s %12s %12s\n' "median of $RUNS" shoal HAProxy direct \
    shoal/HAProxy shoal/direct
  for test in "${TESTS[@]}"; do
    printf '%-24s %10s %10s %10s %12s %12s\n' "${LABEL[$test]} (${UNIT[$test]})" \
      "${MED[$test shoal]:-n/a}" "${MED[$test haproxy]}" "${MED[$test direct]}" \
      "$(ratio "$test" shoal haproxy)" "$(ratio "$test" shoal direct)"
  done
  echo "wrk -t1 -c$CONNS -d${DURATION}s; bulk: one ${BULK_MB} MB download; ratios: higher is better, 1.00 = the reference"
  echo "HAProxy/direct: keep-alive $(div "${MED[ka haproxy]}" "${MED[ka direct]}")," \
    "new conn $(div "${MED[close haproxy]}" "${MED[close direct]}")," \
    "bulk $(div "${MED[bulk haproxy]}" "${MED[bulk direct]}")"
  context
  for test in "${TESTS[@]}"; do
    if [[ -z ${MED[$test shoal]:-} ]]; then
      echo "${LABEL[$test]}: n/a (--reference-only; HAProxy ${MED[$test haproxy]}," \
        "direct ${MED[$test direct]} ${UNIT[$test]})"
    else
      echo "${LABEL[$test]}: $(ratio "$test" shoal haproxy)x HAProxy, $(ratio "$test" shoal direct)x direct"
    fi
  done
}

main() {
  parse_args "$@"
  [[ $BULK_MB =~ ^[1-9][0-9]*$ ]] || die "BULK_MB must be a positive integer, got '$BULK_MB'"
  local tools=(curl ip nginx haproxy wrk sysctl truncate)
  ((REFERENCE_ONLY)) || tools+=(docker)
  measure_two_hosts "${tools[@]}"
  site
  tune_client
  URL[direct]=http://$BACKEND:$TARGET
  URL[haproxy]=http://$(lab addr 1):$HAPROXY_PORT
  URL[shoal]=http://$(lab addr 1):$PUBLISHED
  make_reference
  PATHS=(haproxy direct)
  if ((!REFERENCE_ONLY)); then
    make_shoal
    PATHS=(shoal haproxy direct)
  fi
  echo "lab $LAB: ${PATHS[*]}, client cl -> h1 -> h2, $RUNS runs per test"
  run_all
  summary
}

main "$@"
