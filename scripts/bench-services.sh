#!/usr/bin/env bash
# Service scheduling, measured on a lab of 1 manager (h1) and 3 workers (h2-h4),
# tasks on the process executor (`sleep 100000`):
#   create100               from just before `docker service create --detach
#                           --replicas 100` to RunningTasks 100 (GET
#                           /services?status=true); the service is removed
#                           and every task process gone before the next run;
#   node-death-to-replaced  a fresh service of 12 replicas, 3 per node; from just
#                           before `netlab/lab.sh kill` of one worker's daemon
#                           to 12 tasks running again, none on the dead node
#                           (GET /tasks); the worker is restarted, the service
#                           removed, and the next run kills the next worker.
# Each measure runs --runs N times (default 3); the script prints each run,
# a context line, then
#   create100: median X ms, min Y ms, max Z ms over N runs
#   node-death-to-replaced: median X ms, min Y ms, max Z ms over N runs
# Run as root. The lab (LAB=shoal-bench) is torn down on every exit; SHOAL_BIN
# picks the daemon binary as in netlab/lab.sh.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export LAB=shoal-bench
export LAB_DIR=${LAB_DIR:-/tmp/shoal-lab}
HOSTS=(1 2 3 4)
WORKERS=(2 3 4)
API=http://localhost/v1.41
PROGRAM=(sleep 100000)
CREATE_TIMEOUT=120   # seconds for 100 tasks to run
REPLACE_TIMEOUT=60   # seconds after the kill for the 12 to run elsewhere
SETTLE_TIMEOUT=60    # seconds for a lab host to come back, tasks to go, a spread to form
# A new leader marks no node Down until every node had 3 heartbeat periods
# (3 x 5 s) to call it: a kill sooner after swarm init would measure that.
LEADER_SETTLE=16
RUNS=3
MEASURE=bench-services
# shellcheck source=scripts/measure-lib.sh
source scripts/measure-lib.sh

# --- the lab --------------------------------------------------------------

# get PATH: GET on the manager's API; the body on 2xx, failure otherwise.
get() { curl -sf --max-time 5 --unix-socket "${SOCK[1]}" "$API$1"; }

# A swarm of 4: h1 inits, h2-h4 join as workers.
make_swarm() {
  lab down >/dev/null 2>&1 || true   # a leftover of an earlier, killed run
  lab up "${#HOSTS[@]}" >/dev/null
  form_swarm worker "${#HOSTS[@]}"
  wait_for "every node Ready" "$SETTLE_TIMEOUT" all_ready
}

all_ready() {
  get /nodes | jq -e --argjson n "${#HOSTS[@]}" \
    '[.[] | select(.Status.State == "ready")] | length == $n' >/dev/null
}

node_is() {  # node_is I STATE: the store has host I's node in STATE (ready, down)
  get "/nodes/${NODE_ID[$1]}" | jq -e --arg s "$2" '.Status.State == $s' >/dev/null
}

# running_tasks SERVICE: RunningTasks of service ls's view (GET /services?status=true).
running_tasks() {
  get '/services?status=true' |
    jq -er --arg s "$1" '.[] | select(.Spec.Name == $s) | .ServiceStatus.RunningTasks'
}

# wanted_running SERVICE: the /tasks filters for its tasks wanted running, URL-encoded.
wanted_running() {
  jq -rn --arg s "$1" '{service: [$s], "desired-state": ["running"]} | tojson | @uri'
}

# spread SERVICE: its running tasks per node, "h1=25 h2=25 h3=25 h4=25".
spread() {
  local i tasks out=()
  tasks=$(get "/tasks?filters=$(wanted_running "$1")") || return 1
  for i in "${HOSTS[@]}"; do
    out+=("h$i=$(jq --arg n "${NODE_ID[$i]}" \
      '[.[] | select(.NodeID == $n and .Status.State == "running")] | length' <<<"$tasks")")
  done
  echo "${out[*]}"
}

# task_procs: how many task processes (children of a shim) run on the lab's hosts.
task_procs() {
  ps -e -ww -o pid=,ppid=,stat=,args= |
    awk -v dir="$LAB_DIR/$LAB/h" '
      $3 ~ /^Z/ { next }
      { pid = $1; parent[pid] = $2; sub(/^ *[0-9]+ +[0-9]+ +[^ ]+ +/, ""); args[pid] = $0 }
      END {
        for (p in args) if (index(args[parent[p]], "shim --dir " dir)) n++
        print n + 0
      }'
}

no_task_procs() { (($(task_procs) == 0)); }

# remove SERVICE: service rm, then wait (bounded) until no task process is left.
remove() {
  dk 1 service rm "$1" >/dev/null
  wait_for "every task process of $1 gone" "$SETTLE_TIMEOUT" no_task_procs
}

create() {  # create NAME REPLICAS: a service of PROGRAM, started in the background
  dk 1 service create --detach --name "$1" --replicas "$2" --stop-grace-period 1s \
    "${PROGRAM[@]}" >/dev/null 2>&1
}

# --- create100 -------------------------------------------------------------

# measure_create RUN: prints one line ending "<figure> ms".
measure_create() {
  local run=$1 t0 t1 n polls=0
  local deadline=$(($(now_ms) + CREATE_TIMEOUT * 1000))
  t0=$(now_ms)
  create bench 100
  until n=$(running_tasks bench) && ((n == 100)); do
    (($(now_ms) < deadline)) || die "create100 run $run: ${n:-?} of 100 running after ${CREATE_TIMEOUT}s"
    polls=$((polls + 1))
    sleep 0.05
  done
  t1=$(now_ms)
  local where
  where=$(spread bench) || where='?'
  remove bench
  printf 'create100 run %d: 100 running after %d polls, on %s; %d ms\n' \
    "$run" "$polls" "$where" $((t1 - t0))
}

# --- node-death-to-replaced -------------------------------------------------

# replaced ID: the 12 of victim run, none on node ID (RunningTasks counts the
# running tasks wanted running, as here).
replaced() {
  local tasks
  tasks=$(get "/tasks?filters=$(wanted_running victim)") || return 1
  jq -e --arg dead "$1" '[.[] | select(.Status.State == "running")] as $r
    | ($r | length) == 12 and all($r[]; .NodeID != $dead)' <<<"$tasks" >/dev/null
}

even_spread() { [[ $(spread victim) == 'h1=3 h2=3 h3=3 h4=3' ]]; }

# measure_death RUN: kill a worker under a 12-replica service, time the
# replacement, restore the lab. Prints one line ending "<figure> ms".
measure_death() {
  local run=$1 t0 t_killed t_down='' t1
  local worker=${WORKERS[$(((run - 1) % ${#WORKERS[@]}))]}
  create victim 12
  wait_for "12 victim tasks, 3 per node" "$SETTLE_TIMEOUT" even_spread
  local wait=$((LEADER_SETTLE - (SECONDS - SWARM_SINCE)))
  if ((wait > 0)); then sleep "$wait"; fi

  t0=$(now_ms)
  lab kill "$worker"
  t_killed=$(now_ms)
  local deadline=$((t0 + REPLACE_TIMEOUT * 1000))
  until replaced "${NODE_ID[$worker]}"; do
    (($(now_ms) < deadline)) || die "node-death run $run: victim not back to 12 off h$worker within ${REPLACE_TIMEOUT}s"
    if [[ -z $t_down ]] && node_is "$worker" down; then t_down=$(now_ms); fi
    sleep 0.05
  done
  t1=$(now_ms)
  if [[ -z $t_down ]] && node_is "$worker" down; then t_down=$t1; fi

  local where down_ms='?'
  where=$(spread victim) || where='?'
  if [[ -n $t_down ]]; then down_ms=$((t_down - t0)); fi
  lab start "$worker" >/dev/null
  wait_for "h$worker Ready again" "$SETTLE_TIMEOUT" node_is "$worker" ready
  remove victim
  printf 'node-death run %d: killed h%s (lab.sh kill returned after %d ms), Down after %s ms, 12 running on %s; %d ms\n' \
    "$run" "$worker" $((t_killed - t0)) "$down_ms" "$where" $((t1 - t0))
}

# --- summary --------------------------------------------------------------

main() {
  parse_args "$@"
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
  local tool
  for tool in curl jq docker; do command -v "$tool" >/dev/null || die "needs $tool"; done
  measure_start

  make_swarm
  echo "lab $LAB: 1 manager, ${#WORKERS[@]} workers, $RUNS runs of each measure"
  local create_stats death_stats
  run_measure create100 measure_create
  create_stats=$(stats "${FIGURES[@]}")
  run_measure node-death-to-replaced measure_death
  death_stats=$(stats "${FIGURES[@]}")
  context
  echo "create100: $create_stats over $RUNS runs"
  echo "node-death-to-replaced: $death_stats over $RUNS runs"
}

main "$@"
