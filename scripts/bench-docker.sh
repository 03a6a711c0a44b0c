#!/usr/bin/env bash
# The docker executor's start-up of a service, measured on a lab of 1 manager
# (h1) and 3 workers (h2-h4) sharing one Docker engine (scripts/engine.sh),
# against the engine alone in the same run:
#   shoal   from just before `docker service create --detach --replicas N`
#           (a container of the test image running `sleep 100000`, on an
#           overlay network) to N tasks running (GET /services?status=true),
#           each a container plumbed into the overlay by its node;
#   engine  from just before N `docker run -d --network none` of the same
#           image and command, 4 at a time (one per lab host's agent), to the
#           last of them started: what the engine itself takes.
# N is REPLICAS (default 24). Every container goes before the next run. Each
# measure runs --runs N times (default 3), the two in turn; the script prints
# each run, a context line, then
#   shoal: median X ms, min Y ms, max Z ms over N runs
#   engine alone: median X ms, ...
#   ratio shoal / engine alone (medians): R
# Run as root. The lab (LAB=shoal-bench-docker) is torn down on every exit,
# and the engine stopped if this script started it.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export LAB=shoal-bench-docker
export LAB_DIR=${LAB_DIR:-/tmp/shoal-lab}
HOSTS=4
REPLICAS=${REPLICAS:-24}
API=http://localhost/v1.41
IMAGE=${ENGINE_IMAGE:-shoal-busybox:latest}
PROGRAM=(sleep 100000)
TIMEOUT=180   # seconds for the containers to run, or to go
RUNS=3
MEASURE=bench-docker
# shellcheck source=scripts/measure-lib.sh
source scripts/measure-lib.sh
ENGINE=$(scripts/engine.sh host)
OWN_ENGINE=0
REFERENCE_LABEL=shoal-bench-docker.reference

eng() { timeout 60 docker -H "$ENGINE" "$@"; }
get() { curl -sf --max-time 5 --unix-socket "${SOCK[1]}" "$API$1"; }

# The engine's containers of this lab's nodes and of the reference runs.
our_containers() {
  local id
  for id in "${NODE_ID[@]}"; do
    eng ps -aq --filter "label=com.docker.swarm.node.id=$id"
  done
  eng ps -aq --filter "label=$REFERENCE_LABEL"
}
none_left() { [[ -z $(our_containers) ]]; }
remove_containers() { our_containers | xargs -r docker -H "$ENGINE" rm -f >/dev/null; }

measure_cleanup() {
  remove_containers
  ((OWN_ENGINE == 0)) || scripts/engine.sh stop >/dev/null
}

running_tasks() {
  get '/services?status=true' |
    jq -er --arg s "$1" '.[] | select(.Spec.Name == $s) | .ServiceStatus.RunningTasks'
}

# measure_shoal RUN: prints one line ending "<figure> ms".
measure_shoal() {
  local run=$1 t0 t1 n=0
  local deadline=$(($(now_ms) + TIMEOUT * 1000))
  t0=$(now_ms)
  dk 1 service create --detach --name bench --replicas "$REPLICAS" --network bench \
    --stop-grace-period 1s "$IMAGE" "${PROGRAM[@]}" >/dev/null 2>&1
  until n=$(running_tasks bench) && ((n == REPLICAS)); do
    (($(now_ms) < deadline)) || die "shoal run $run: ${n:-?} of $REPLICAS running after ${TIMEOUT}s"
    sleep 0.05
  done
  t1=$(now_ms)
  dk 1 service rm bench >/dev/null
  wait_for "every container of bench gone" "$TIMEOUT" none_left
  printf 'shoal run %d: %d tasks running as containers; %d ms\n' "$run" "$REPLICAS" $((t1 - t0))
}

# measure_engine RUN: prints one line ending "<figure> ms".
measure_engine() {
  local run=$1 t0 t1
  t0=$(now_ms)
  seq "$REPLICAS" | xargs -P "$HOSTS" -I{} timeout 60 docker -H "$ENGINE" run -d \
    --network none --label "$REFERENCE_LABEL" "$IMAGE" "${PROGRAM[@]}" >/dev/null
  t1=$(now_ms)
  local started
  started=$(eng ps -q --filter "label=$REFERENCE_LABEL" --filter status=running | grep -c .) || true
  ((started == REPLICAS)) || die "engine run $run: $started of $REPLICAS running"
  remove_containers
  printf 'engine run %d: %d containers started with docker run -d; %d ms\n' "$run" "$REPLICAS" $((t1 - t0))
}

main() {
  parse_args "$@"
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces, the engine)"
  [[ $REPLICAS =~ ^[1-9][0-9]*$ ]] || die "REPLICAS must be a positive integer, got '$REPLICAS'"
  eng version >/dev/null 2>&1 || OWN_ENGINE=1
  measure_start
  scripts/engine.sh start >/dev/null

  lab down >/dev/null 2>&1 || true   # a leftover of an earlier, killed run
  lab up "$HOSTS" >/dev/null
  form_swarm worker "$HOSTS" --executor docker --docker-host "$ENGINE"
  dk 1 network create -d overlay bench >/dev/null
  echo "lab $LAB: 1 manager, $((HOSTS - 1)) workers on one engine, $REPLICAS replicas, $RUNS runs of each measure"
  # Interleaved, so that a slow moment of the machine hits both alike.
  local run line shoal_figures=() engine_figures=()
  for ((run = 1; run <= RUNS; run++)); do
    line=$(measure_shoal "$run")
    echo "$line"
    shoal_figures+=("$(figure shoal "$run" "$line")")
    line=$(measure_engine "$run")
    echo "$line"
    engine_figures+=("$(figure engine "$run" "$line")")
  done
  context
  echo "shoal: $(stats "${shoal_figures[@]}") over $RUNS runs"
  echo "engine alone: $(stats "${engine_figures[@]}") over $RUNS runs"
  echo "ratio shoal / engine alone (medians): $(div "$(median "${shoal_figures[@]}")" "$(median "${engine_figures[@]}")")"
}

main "$@"
