#!/usr/bin/env bash
# The control plane across hosts, driven by the stock docker CLI: three
# managers and a worker join over the network, join tokens are refused and
# rotated, the leader is killed and another manager takes writes, the killed
# manager comes back, a worker is promoted and demoted, and the swarm survives
# a restart of every daemon. h5 is a spare host for the joins that must fail.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

MANAGERS=(1 2 3)
WORKER=4
SPARE=5
NOT_MANAGER="This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state"
BAD_TOKEN="A valid join token is necessary"

lab_setup 5
for i in "${MANAGERS[@]}" "$WORKER" "$SPARE"; do
  require check "daemon starts in h$i" lab start "$i"
done
ADDR1=$(lab addr 1)

# "<hostname> <status> <manager status>" per node, sorted by hostname; a worker
# shows "-" so that every row has three fields.
node_rows() {
  docker_on "$1" node ls \
    --format '{{.Hostname}} {{.Status}} {{with .ManagerStatus}}{{.}}{{else}}-{{end}}' | sort
}

# tally I: node ls on host I counted up, the rows after it so that a failed
# check shows the whole table, e.g.
#   4 nodes, 4 Ready, 0 Down, 1 Leader, 2 Reachable, 0 Unreachable, workers: h4 [h1 Ready Leader; ...]
tally() {
  node_rows "$1" | awk '
    { n++; st[$2]++; ms[$3]++; rows = rows sep $0; sep = "; "
      if ($3 == "-") workers = workers " " $1 }
    END { printf "%d nodes, %d Ready, %d Down, %d Leader, %d Reachable, %d Unreachable, workers:%s [%s]\n",
            n, st["Ready"], st["Down"], ms["Leader"], ms["Reachable"], ms["Unreachable"], workers, rows }'
}

# A regex for tally's output: the counts, then anything (the rows).
HEALTHY_3M='^4 nodes, 4 Ready, 0 Down, 1 Leader, 2 Reachable, 0 Unreachable, workers: h4 \['
HEALTHY_4M='^4 nodes, 4 Ready, 0 Down, 1 Leader, 3 Reachable, 0 Unreachable, workers: \['

# node_row I HOSTNAME: that node's row in host I's node ls.
node_row() { node_rows "$1" | awk -v h="$2" '$1 == h'; }

# leader_index I: the host index of the Leader in host I's node ls (h2 -> 2).
leader_index() {
  local leaders
  leaders=$(node_rows "$1" | awk '$3 == "Leader" {print $1}')
  [[ $leaders =~ ^h([0-9]+)$ ]] || { echo "not exactly one leader: '$leaders'" >&2; return 1; }
  echo "${BASH_REMATCH[1]}"
}

# "ID hostname" per node, sorted: the swarm's identity across restarts.
node_ids() { docker_on "$1" node ls --format '{{.ID}} {{.Hostname}}' | sort; }

label_of() {  # label_of I NODE KEY: the node's label KEY as host I sees it
  docker_on "$1" node inspect "$2" --format "{{index .Spec.Labels \"$3\"}}"
}

join() {  # join I TOKEN: host I joins the swarm through h1
  docker_on "$1" swarm join --token "$2" "$ADDR1:2377"
}

# The token with another secret of the same shape: SWMTKN-1-<CA digest>-<secret>,
# the secret 25 base-36 digits below 2^128 (a leading 0 or 1 keeps it there).
wrong_secret() {
  local secret=${1##*-} first=0
  [[ ${secret:0:1} != 0 ]] || first=1
  echo "${1%-*}-$first${secret:1}"
}

# A refused join must leave nothing behind on the spare host; if it did (a
# failed check says so), leave so the next join is judged on its own.
spare_not_joined() {
  check_output "$1: h$SPARE is still not in a swarm" "Swarm: inactive" docker_on "$SPARE" info
  [[ $OUT == *"Swarm: inactive"* ]] || docker_on "$SPARE" swarm leave --force >/dev/null 2>&1 || true
}

# 1. h1 creates the swarm; h2 and h3 join as managers, h4 as a worker.
require check_output "h1: swarm init --advertise-addr $ADDR1" "Swarm initialized" \
  docker_on 1 swarm init --advertise-addr "$ADDR1"
MANAGER_TOKEN=$(docker_on 1 swarm join-token -q manager) || MANAGER_TOKEN=none
WORKER_TOKEN=$(docker_on 1 swarm join-token -q worker) || WORKER_TOKEN=none
for i in 2 3; do
  require check_output "h$i: swarm join with the manager token" \
    "This node joined a swarm as a manager." join "$i" "$MANAGER_TOKEN"
done
require check_output "h$WORKER: swarm join with the worker token" \
  "This node joined a swarm as a worker." join "$WORKER" "$WORKER_TOKEN"

# availabilities I: the AVAILABILITY column of host I's node ls, on one line.
availabilities() { docker_on "$1" node ls --format '{{.Availability}}' | tr '\n' ' '; }

# 2. Every manager sees 4 Ready nodes, one Leader, two Reachable, h4 a worker.
for i in "${MANAGERS[@]}"; do
  eventually check_match "h$i: node ls shows 4 Ready, 1 Leader, 2 Reachable, h4 worker" \
    "$HEALTHY_3M" tally "$i"
done
# Nodes that joined without --availability are active, like the one that made the swarm.
check_match "every node is Active" '^Active Active Active Active $' availabilities 1
check_output "h$WORKER: docker info says Is Manager: false" "Is Manager: false" \
  docker_on "$WORKER" info
check_fails "h$WORKER: node ls is refused on a worker" "$NOT_MANAGER" docker_on "$WORKER" node ls

# A short heartbeat, so that a dead node is Down within seconds (3 missed beats).
check "swarm update --dispatcher-heartbeat 1s" docker_on 1 swarm update --dispatcher-heartbeat 1s
check_output "docker info: Heartbeat Period: 1 second" "Heartbeat Period: 1 second" docker_on 1 info

# 3. Join tokens: a wrong secret is refused; a rotated-out token too.
check_fails "h$SPARE: join with a wrong secret is refused" "$BAD_TOKEN" \
  join "$SPARE" "$(wrong_secret "$WORKER_TOKEN")"
spare_not_joined "after the wrong secret"
check_output "join-token --rotate worker" "Successfully rotated worker join token" \
  docker_on 1 swarm join-token --rotate worker
NEW_WORKER_TOKEN=$(docker_on 1 swarm join-token -q worker) || NEW_WORKER_TOKEN=none
check "the rotated worker token is new" test "$NEW_WORKER_TOKEN" != "$WORKER_TOKEN"
check_match "the manager token did not change" "^$MANAGER_TOKEN\$" \
  docker_on 1 swarm join-token -q manager
check_fails "h$SPARE: join with the rotated-out worker token is refused" "$BAD_TOKEN" \
  join "$SPARE" "$WORKER_TOKEN"
spare_not_joined "after the old token"
eventually check_match "h1: node ls still shows the same 4 nodes" "$HEALTHY_3M" tally 1
# The new token works: h5 joins, leaves, and is removed once Down.
check_output "h$SPARE: join with the new worker token" "This node joined a swarm as a worker." \
  join "$SPARE" "$NEW_WORKER_TOKEN"
check "h$SPARE: swarm leave" docker_on "$SPARE" swarm leave
eventually check_match "h1: h$SPARE is Down after leaving" "^h$SPARE Down -\$" node_row 1 "h$SPARE"
check "h1: node rm h$SPARE" docker_on 1 node rm "h$SPARE"
eventually check_match "h1: node ls is back to the 4 nodes" "$HEALTHY_3M" tally 1

# 4. Failover: SIGKILL the leader's daemon; another manager takes writes.
LEADER=$(leader_index 1) || LEADER=1
OTHER=1
for i in "${MANAGERS[@]}"; do
  if ((i != LEADER)); then OTHER=$i; break; fi
done
IDS=$(node_ids 1) || IDS=none
check "kill -9 the leader's daemon (h$LEADER)" lab kill "$LEADER"
# The write is retried (bounded) until a new leader has been elected.
eventually check "h$OTHER: node update --label-add failover=1 h$WORKER" \
  docker_on "$OTHER" node update --label-add failover=1 "h$WORKER"
check_match "h$OTHER: the label is set" '^1$' label_of "$OTHER" "h$WORKER" failover
eventually check_match "h$OTHER: node ls shows a new Leader and h$LEADER Unreachable and Down" \
  '^4 nodes, 3 Ready, 1 Down, 1 Leader, 1 Reachable, 1 Unreachable, workers: h4 \[' tally "$OTHER"
check_match "h$OTHER: the Unreachable, Down one is h$LEADER" "^h$LEADER Down Unreachable\$" \
  node_row "$OTHER" "h$LEADER"

# 5. The killed manager restarts on its data dir and is Reachable again.
require check "restart h$LEADER's daemon" lab start "$LEADER"
for i in "$LEADER" "$OTHER"; do
  eventually check_match "h$i: node ls shows 4 Ready, 1 Leader, 2 Reachable again" \
    "$HEALTHY_3M" tally "$i"
done
check_match "h$LEADER is Ready and Reachable" "^h$LEADER Ready Reachable\$" \
  node_row "$OTHER" "h$LEADER"

# 6. Promote the worker to a manager (a Raft voter), then demote it again.
check_output "node promote h$WORKER" "Node h$WORKER promoted to a manager in the swarm." \
  docker_on 1 node promote "h$WORKER"
eventually check_match "node ls shows 4 managers: 1 Leader, 3 Reachable" "$HEALTHY_4M" tally 1
eventually check_output "h$WORKER: docker info says Is Manager: true" "Is Manager: true" \
  docker_on "$WORKER" info
eventually check_match "h$WORKER serves node ls as a manager" "$HEALTHY_4M" tally "$WORKER"
check_output "node demote h$WORKER" "Manager h$WORKER demoted in the swarm." \
  docker_on 1 node demote "h$WORKER"
eventually check_match "node ls shows 3 managers again, h$WORKER a worker" "$HEALTHY_3M" tally 1
eventually check_output "h$WORKER: docker info says Is Manager: false again" \
  "Is Manager: false" docker_on "$WORKER" info
eventually check_fails "h$WORKER: node ls is refused again" "$NOT_MANAGER" \
  docker_on "$WORKER" node ls

# 7. SIGKILL every daemon and start them all again: the same swarm comes back.
for i in "${MANAGERS[@]}" "$WORKER"; do check "kill -9 h$i's daemon" lab kill "$i"; done
for i in "${MANAGERS[@]}" "$WORKER"; do require check "restart h$i's daemon" lab start "$i"; done
# A write first: it needs an elected leader, which a read of the stored table does not.
eventually check "h2: node update --label-add restarted=1 h$WORKER" \
  docker_on 2 node update --label-add restarted=1 "h$WORKER"
eventually check_match "h1: node ls shows 4 Ready, 1 Leader, 2 Reachable, h4 worker" \
  "$HEALTHY_3M" tally 1
check_match "h1: the same 4 node IDs" "^$IDS\$" node_ids 1
check_match "the failover label survived" '^1$' label_of 1 "h$WORKER" failover
check_match "the new label is there" '^1$' label_of 3 "h$WORKER" restarted
