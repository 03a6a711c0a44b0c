#!/usr/bin/env bash
# Leader failover, measured: on a lab of 3 managers, SIGKILL the leader's
# daemon and time how long until a write through another manager is
# acknowledged, i.e. from just before `netlab/lab.sh kill` to the first 2xx of
# POST /nodes/{id}/update. Repeats it --runs N times (default 10), restarting
# the killed daemon in between, and prints each run's figure, then
#   failover: median X ms, min Y ms, max Z ms over N runs
# Run as root. The lab (LAB=shoal-fo) is torn down on every exit; SHOAL_BIN
# picks the daemon binary as in netlab/lab.sh.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export LAB=shoal-fo
export LAB_DIR=${LAB_DIR:-/tmp/shoal-lab}
MANAGERS=(1 2 3)
API=http://localhost/v1.41
HEALTHY_TIMEOUT=60   # seconds for the 3 managers to agree on a leader, all Reachable
WRITE_TIMEOUT=30     # seconds after the kill to get a write acknowledged
CURL_TIMEOUT=12      # per request: above the daemon's own 10 s wait for a leader
RUNS=10
MEASURE=failover
# shellcheck source=scripts/measure-lib.sh
source scripts/measure-lib.sh

# --- the lab --------------------------------------------------------------

# get I PATH: GET on host I's API; the body on 2xx, failure otherwise.
get() { curl -sf --max-time 5 --unix-socket "${SOCK[$1]}" "$API$2"; }

# A swarm of 3 managers: h1 inits, h2 and h3 join with the manager token.
make_swarm() {
  lab down >/dev/null 2>&1 || true   # a leftover of an earlier, killed run
  lab up "${#MANAGERS[@]}" >/dev/null
  form_swarm manager "${#MANAGERS[@]}"
}

# leader_view: node ls JSON on stdin -> "<leader hostname> <Reachable count>";
# "none" when there is not exactly one Leader.
leader_view() {
  jq -er '[.[] | select(.ManagerStatus)] as $m
    | [$m[] | select(.ManagerStatus.Leader) | .Description.Hostname] as $leaders
    | [$m[] | select(.ManagerStatus.Reachability == "reachable")] as $reachable
    | "\(if ($leaders | length) == 1 then $leaders[0] else "none" end) \($reachable | length)"'
}

# manager_status_is I HOSTNAME REACHABILITY: host I's node ls agrees.
manager_status_is() {
  get "$1" /nodes | jq -e --arg h "$2" --arg r "$3" \
    'any(.[]; .Description.Hostname == $h and .ManagerStatus.Reachability == $r)' >/dev/null
}

# healthy_leader: every daemon answers and every manager reports the same
# single Leader and 3 Reachable; prints the leader's host index.
healthy_leader() {
  local i v first=''
  for i in "${MANAGERS[@]}"; do
    v=$(get "$i" /nodes | leader_view) || return 1
    [[ $v =~ ^h([0-9]+)\ ${#MANAGERS[@]}$ ]] || return 1
    [[ -z $first || $v == "$first" ]] || return 1
    first=$v
  done
  echo "${BASH_REMATCH[1]}"
}

# wait_healthy: start any daemon that is not answering, then wait (bounded)
# for healthy_leader; prints the leader's host index.
wait_healthy() {
  local i leader deadline=$((SECONDS + HEALTHY_TIMEOUT))
  for i in "${MANAGERS[@]}"; do
    curl -sf --max-time 2 --unix-socket "${SOCK[$i]}" http://localhost/_ping >/dev/null ||
      lab start "$i" >/dev/null
  done
  until leader=$(healthy_leader); do
    ((SECONDS < deadline)) || die "no single leader with all managers Reachable within ${HEALTHY_TIMEOUT}s"
    sleep 0.2
  done
  echo "$leader"
}

# --- one measurement ------------------------------------------------------

# try_write I ID VERSION SPEC VALUE: POST the spec with label failover=VALUE to
# node ID through host I; succeeds on a 2xx.
try_write() {
  local body status
  body=$(jq -c --arg v "$5" '.Labels = ((.Labels // {}) + {failover: $v})' <<<"$4") || return 1
  status=$(curl -s --max-time "$CURL_TIMEOUT" -o /dev/null -w '%{http_code}' \
    --unix-socket "${SOCK[$1]}" -H 'Content-Type: application/json' --data-binary "$body" \
    -X POST "$API/nodes/$2/update?version=$3") || return 1
  [[ $status == 2?? ]]
}

# read_node I ID: "<version> <spec JSON>" of node ID as host I has it.
read_node() {
  get "$1" "/nodes/$2" | jq -er 'select(.Version.Index != null) | "\(.Version.Index) \(.Spec | tojson)"'
}

# measure RUN: kill the leader, time the first acknowledged write through
# another manager, restart the killed daemon. Prints one line ending
# "<figure> ms".
measure() {
  local run=$1 leader writer id node version spec t0 t_killed t1 attempts=0 i
  leader=$(wait_healthy)
  for i in "${MANAGERS[@]}"; do
    if ((i != leader)); then writer=$i; break; fi
  done
  id=${NODE_ID[$writer]}
  node=$(read_node "$writer" "$id") || die "run $run: cannot read node h$writer"
  version=${node%% *} spec=${node#* }

  t0=$(date +%s%N)
  lab kill "$leader"
  t_killed=$(date +%s%N)
  local deadline=$(($(now_ms) + WRITE_TIMEOUT * 1000))
  until try_write "$writer" "$id" "$version" "$spec" "$run-$((++attempts))"; do
    (($(now_ms) < deadline)) || die "run $run: no write acknowledged through h$writer within ${WRITE_TIMEOUT}s"
    # The version may have moved (the new leader writes node health): re-read it.
    if node=$(read_node "$writer" "$id"); then version=${node%% *} spec=${node#* }; fi
    sleep 0.01
  done
  t1=$(date +%s%N)

  local new_leader
  new_leader=$(get "$writer" /nodes | leader_view) || new_leader='? ?'
  # Until the new leader has marked the killed manager Unreachable, "3
  # Reachable" is what the old leader wrote: restarting before that would let
  # the next run start on a stale view.
  wait_for "h$leader shown Unreachable" 10 manager_status_is "$writer" "h$leader" unreachable
  lab start "$leader" >/dev/null
  wait_healthy >/dev/null
  printf 'run %2d: killed leader h%s (lab.sh kill returned after %d ms); write through h%s acked after %d attempt(s); new leader %s; %d ms\n' \
    "$run" "$leader" $(((t_killed - t0) / 1000000)) "$writer" "$attempts" "${new_leader%% *}" \
    $(((t1 - t0) / 1000000))
}

# --- summary --------------------------------------------------------------

main() {
  parse_args "$@"
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
  local tool
  for tool in curl jq docker; do command -v "$tool" >/dev/null || die "needs $tool"; done
  measure_start

  make_swarm
  echo "lab $LAB: ${#MANAGERS[@]} managers, $RUNS runs"
  local run line ms=()
  for ((run = 1; run <= RUNS; run++)); do
    line=$(measure "$run")
    echo "$line"
    [[ $line =~ ([0-9]+)\ ms$ ]] || die "run $run: no figure in '$line'"
    ms+=("${BASH_REMATCH[1]}")
  done
  echo "node ls after the last run:"
  dk 1 node ls | sed 's/^/  /'
  context
  echo "failover: $(stats "${ms[@]}") over $RUNS runs"
}

main "$@"
