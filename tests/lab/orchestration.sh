#!/usr/bin/env bash
# Services across hosts, driven by the stock docker CLI: h1 inits a swarm that
# h2-h4 join as workers; a replicated service spreads evenly, a global one
# runs once per node (and on a node that joins later), a constraint pins
# tasks, scaling converges, a drained node is emptied, a worker whose daemon
# is killed has its tasks replaced elsewhere and stops its own when it comes
# back, a rolling update and a rollback replace every task, and removing the
# services leaves no process behind. h5 is the node that joins late.
#
# Tasks run on the process executor: `sleep N` runs as PID 1 of namespaces of
# its own under a `shoal shim --dir <host's data dir>/tasks/<task>`, so the
# processes each host really runs are checked as well as what the store says.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

HOSTS=(1 2 3 4)
LATE=5
# A different program per service, so that processes tell services apart.
WEB=(sleep 100000)
AGENT=(sleep 100001)
PINNED=(sleep 100002)
# sleep ignores SIGTERM as PID 1: without a short grace every stop waits 10 s.
GRACE=(--stop-grace-period 1s)

lab_setup 5
for i in "${HOSTS[@]}"; do require check "daemon starts in h$i" lab start "$i"; done
ADDR1=$(lab addr 1)
dk() { docker_on 1 "$@"; }

# --- what the store says ----------------------------------------------------

# placement SERVICE: its running tasks, in all and per node, e.g.
# "8: h1=2 h2=2 h3=2 h4=2" (nodes without one left out), then "pending=N" for
# the tasks wanted running that do not run (yet).
placement() {
  local rows
  rows=$(dk service ps "$1" --filter desired-state=running --format '{{.Node}} {{.CurrentState}}') ||
    return 1
  sort -V <<<"$rows" | awk '
    $2 == "Running" { if (!($1 in n)) order[++k] = $1; n[$1]++; all++; next }
    NF { pending++ }
    END {
      printf "%d:", all
      for (i = 1; i <= k; i++) printf " %s=%d", order[i], n[order[i]]
      if (pending) printf " pending=%d", pending
      print ""
    }'
}

# running_on SERVICE HOSTNAME: how many of its tasks run on that node.
running_on() {
  local states
  states=$(dk service ps "$1" --filter desired-state=running --filter "node=$2" \
    --format '{{.CurrentState}}') || return 1
  grep -c '^Running' <<<"$states" || true
}

# replicas SERVICE: the REPLICAS column of service ls, e.g. "8/8".
replicas() {
  dk service ls --format '{{.Name}} {{.Replicas}}' | awk -v s="$1" '$1 == s {print $2}'
}

# running_ids SERVICE: the IDs of its running tasks, sorted.
running_ids() {
  dk service ps "$1" --no-trunc --filter desired-state=running --format '{{.ID}} {{.CurrentState}}' |
    awk '$2 == "Running" {print $1}' | sort
}

# kept SERVICE: "K of N": K of the N tasks in $BEFORE (a running_ids output) still run.
BEFORE=''
kept() {
  local now
  now=$(running_ids "$1") || return 1
  echo "$(comm -12 <(echo "$now") <(echo "$BEFORE") | grep -c .) of $(grep -c . <<<"$BEFORE")"
}

# unreported HOSTNAME: tasks on that node the store wants shut down but still
# has as running, one line each; a node that stopped them must say so.
unreported() {
  dk service ps web agent pinned --filter "node=$1" --filter desired-state=shutdown \
    --format '{{.Name}} {{.CurrentState}}' | awk '$2 == "Running"'
}

# node_status HOSTNAME: its STATUS column in node ls, e.g. "Ready".
node_status() {
  dk node ls --format '{{.Hostname}} {{.Status}}' | awk -v h="$1" '$1 == h {print $2}'
}

spec_env() { dk service inspect "$1" --format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}'; }

update_state() { dk service inspect "$1" --format '{{with .UpdateStatus}}{{.State}}{{end}}'; }

# squeezed CMD...: CMD's output with each distinct line once, so that a failed
# check shows the CLI's progress display in a few lines, not thousands.
squeezed() { "$@" 2>&1 | awk '!seen[$0]++'; }

# --- what the hosts run -----------------------------------------------------

# task_pids I [ARGS]: the task processes host I's shims supervise (those
# running exactly ARGS if given). A pgrep inside the lab host would not do:
# the lab shares the root PID namespace, so it would see every lab's tasks.
task_pids() {
  ps -e -ww -o pid=,ppid=,stat=,args= |
    awk -v dir="$LAB_DIR/$LAB/h$1/data/tasks/" -v want="${2:-}" '
      $3 ~ /^Z/ { next }
      { pid = $1; parent[pid] = $2; sub(/^ *[0-9]+ +[0-9]+ +[^ ]+ +/, ""); args[pid] = $0 }
      END {
        for (p in args)
          if (index(args[parent[p]], "shim --dir " dir) && (want == "" || args[p] == want)) print p
      }'
}

nprocs() { task_pids "$@" | wc -l; }   # nprocs I [ARGS]: how many

# procs ARGS: the task processes running ARGS (any if empty), in all and per
# host, e.g. "8: h1=2 h2=2 h3=2 h4=2 h5=0".
procs() {
  local i n all=0 per=''
  for i in "${HOSTS[@]}" "$LATE"; do
    n=$(nprocs "$i" "$1")
    all=$((all + n)) per+=" h$i=$n"
  done
  echo "$all:$per"
}

# shims I: host I's task supervisors still alive.
shims() {
  ps -e -ww -o stat=,args= | awk -v dir="$LAB_DIR/$LAB/h$1/data/tasks/" \
    '$1 !~ /^Z/ && index($0, "shim --dir " dir)' | wc -l
}

# with_env VAR=VALUE ARGS: "N/M": N of the M task processes running ARGS, on
# any host, have VAR=VALUE in their environment.
with_env() {
  local i pid n=0 m=0
  for i in "${HOSTS[@]}"; do
    for pid in $(task_pids "$i" "$2"); do
      m=$((m + 1))
      if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "$1"; then n=$((n + 1)); fi
    done
  done
  echo "$n/$m"
}

# 1. The swarm: h1 manages, h2-h4 are workers (joined as the CLI does by
# default, without --availability).
require check_output "h1: swarm init" "Swarm initialized" dk swarm init --advertise-addr "$ADDR1"
WORKER_TOKEN=$(dk swarm join-token -q worker) || WORKER_TOKEN=none
join() { docker_on "$1" swarm join --token "$WORKER_TOKEN" "${@:2}" "$ADDR1:2377"; }
for i in "${HOSTS[@]:1}"; do
  require check_output "h$i: swarm join as a worker" "This node joined a swarm as a worker." \
    join "$i"
done
# nodes FIELD: node ls as "h1=<FIELD> h2=<FIELD> ...", e.g. nodes Status.
nodes() {
  dk node ls --format "{{.Hostname}}={{.$1}}" | sort -V | paste -sd ' '
}
require eventually check_match "node ls: h1..h4 Ready" '^h1=Ready h2=Ready h3=Ready h4=Ready$' \
  nodes Status
check_match "node ls: h1..h4 Active" '^h1=Active h2=Active h3=Active h4=Active$' \
  nodes Availability

# 2. 8 replicas over 4 equal nodes: 2 each, in the store and in the hosts' processes.
check_output "service create --replicas 8 web: the CLI sees it converge" "converged" \
  squeezed dk service create --name web --replicas 8 "${GRACE[@]}" "${WEB[@]}"
eventually check_match "service ps web: 2 running tasks on each of h1..h4" \
  '^8: h1=2 h2=2 h3=2 h4=2$' placement web
check_match "service ls: web 8/8" '^8/8$' replicas web
eventually check_match "processes: 2 '${WEB[*]}' on each of h1..h4" \
  '^8: h1=2 h2=2 h3=2 h4=2 h5=0$' procs "${WEB[*]}"

# 3. A global service: one task per node, also on a node that joins later.
check "service create --mode global agent" \
  dk service create --detach --name agent --mode global "${GRACE[@]}" "${AGENT[@]}"
eventually check_match "service ps agent: 1 running task on each of h1..h4" \
  '^4: h1=1 h2=1 h3=1 h4=1$' placement agent
check_match "service ls: agent 4/4" '^4/4$' replicas agent
require check "daemon starts in h$LATE" lab start "$LATE"
# h5 names its availability, the other way to join (h2-h4 took the CLI's default).
check_output "h$LATE: swarm join --availability active as a worker" \
  "This node joined a swarm as a worker." join "$LATE" --availability active
eventually check_match "service ps agent: h$LATE gets one too" \
  '^5: h1=1 h2=1 h3=1 h4=1 h5=1$' placement agent
eventually check_match "processes: 1 '${AGENT[*]}' on each of h1..h5" \
  '^5: h1=1 h2=1 h3=1 h4=1 h5=1$' procs "${AGENT[*]}"
# h5 leaves again, so that the rest runs on 4 nodes. Like docker, a node that
# leaves removes its tasks: nothing would ever stop them otherwise.
check "h$LATE: swarm leave" docker_on "$LATE" swarm leave
eventually check_match "h$LATE: no task process left after leaving" '^0$' shims "$LATE"
eventually check_match "node ls: h$LATE Down after leaving" '^Down$' node_status "h$LATE"
check "node rm h$LATE" dk node rm "h$LATE"
eventually check_match "service ps agent: back to one per node on h1..h4" \
  '^4: h1=1 h2=1 h3=1 h4=1$' placement agent

# 4. A constraint pins every task to h3.
check "service create --replicas 3 --constraint node.hostname==h3 pinned" \
  dk service create --detach --name pinned --replicas 3 --constraint node.hostname==h3 \
  "${GRACE[@]}" "${PINNED[@]}"
eventually check_match "service ps pinned: all 3 running on h3" '^3: h3=3$' placement pinned
eventually check_match "processes: 3 '${PINNED[*]}', all on h3" '^3: h1=0 h2=0 h3=3 h4=0 h5=0$' \
  procs "${PINNED[*]}"

# 5. Scaling down and up converges, in the store and on the hosts.
for n in 2 6 8; do
  check "service scale web=$n" squeezed dk service scale "web=$n"
  eventually check_match "service ps web: $n running tasks" "^$n: [^p]*\$" placement web
  check_match "service ls: web $n/$n" "^$n/$n\$" replicas web
  eventually check_match "processes: $n '${WEB[*]}' in all" "^$n: " procs "${WEB[*]}"
done

# 6. Draining h2 moves its tasks away, global ones included, while web stays
# at 8; active again, h2 takes a global task back.
check "node update --availability drain h2" dk node update --availability drain h2
eventually check_match "service ps web: 8 running, none on h2" \
  '^8: h1=[0-9] h3=[0-9] h4=[0-9]$' placement web
check_match "service ls: web 8/8" '^8/8$' replicas web
eventually check_match "service ps agent: no task on h2" '^0$' running_on agent h2
eventually check_match "h2 runs no task process" '^0$' shims 2
check "node update --availability active h2" dk node update --availability active h2
eventually check_match "service ps agent: h2 has its task again" '^1$' running_on agent h2

# 7. A worker's daemon dies: its node is Down and its tasks are replaced on
# the others. Back, it stops what it ran and tells the store so.
check "kill -9 h4's daemon" lab kill 4
eventually check_match "node ls: h4 Down" '^Down$' node_status h4
eventually check_match "service ps web: 8 running on h1..h3" \
  '^8: h1=[0-9] h2=[0-9] h3=[0-9]$' placement web
check_match "service ls: web 8/8" '^8/8$' replicas web
check_match "h4's tasks run on meanwhile (they outlive their daemon)" '^[1-9]' \
  nprocs 4 "${WEB[*]}"
require check "restart h4's daemon" lab start 4
eventually check_match "node ls: h4 Ready again" '^Ready$' node_status h4
# The store gives h4 no web task any more (the scheduler does not move tasks back).
eventually check_match "h4: no '${WEB[*]}' process left" '^0$' nprocs 4 "${WEB[*]}"
eventually check_match "h4: the store has none of its stopped tasks as still running" '^$' \
  unreported h4
check_match "service ps web: still 8 running on h1..h3" '^8: h1=[0-9] h2=[0-9] h3=[0-9]$' \
  placement web

# 8. A rolling update replaces every task; a rollback brings the old spec back
# in new tasks again. The CLI follows both to the end (bounded).
BEFORE=$(running_ids web) || BEFORE=''
CMD_TIMEOUT=90 check "service update --env-add A=B web" \
  squeezed dk service update --env-add A=B web
eventually check_match "web's update completed" '^completed$' update_state web
check_match "web's spec has A=B" '^\["A=B"\]$' spec_env web
eventually check_match "service ps web: none of the 8 tasks from before runs" '^0 of 8$' \
  kept web
check_match "service ps web: 8 running" '^8: [^p]*$' placement web
eventually check_match "every web process has A=B" '^8/8$' with_env A=B "${WEB[*]}"
BEFORE=$(running_ids web) || BEFORE=''
CMD_TIMEOUT=90 check "service rollback web" squeezed dk service rollback web
eventually check_match "web's rollback completed" '^rollback_completed$' update_state web
check_match "web's spec has no env again" '^null$' spec_env web
eventually check_match "service ps web: none of the 8 tasks of the update runs" '^0 of 8$' \
  kept web
check_match "service ps web: 8 running" '^8: [^p]*$' placement web
eventually check_match "no web process has A=B" '^0/8$' with_env A=B "${WEB[*]}"

# 9. Removing the services stops every task on every host.
check "service rm web agent pinned" dk service rm web agent pinned
check_match "service ls is empty" '^$' dk service ls -q
for i in "${HOSTS[@]}"; do
  eventually check_match "h$i: no task process (and no shim) left" '^0$' shims "$i"
done
