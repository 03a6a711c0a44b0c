#!/usr/bin/env bash
# The docker executor: three lab hosts (h1 manager, h2-h3 workers) sharing one
# Docker engine (scripts/engine.sh starts one of shoal's own, off the
# machine's network, and imports a static busybox as $IMAGE). Services run as
# real containers with network mode `none`, labelled with their node, service
# and task, attached to the overlays by shoal: three web replicas published on
# 8080 answer on every node through the mesh with a row fetched from `db` by
# name; `service logs` reads the containers' logs; a missing image fails its
# task with docker's "No such image", a missing program with the engine's
# "starting container failed"; a container killed with `docker kill` is
# replaced; a daemon killed and restarted re-adopts its containers and starts
# no duplicate; `service rm` leaves no container. A named volume is a Docker
# volume, which `docker volume` shows and removes through shoal. Each node manages only the
# containers labelled with its ID. All traffic stays in the lab's namespaces
# (the engine's containers are plumbed into them); the test removes its
# containers, and stops the engine if it started it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

ENGINE=$("$ROOT/scripts/engine.sh" host)
IMAGE=${ENGINE_IMAGE:-shoal-busybox:latest}
eng() { timeout "$CMD_TIMEOUT" docker -H "$ENGINE" "$@"; }
NODE_IDS=()
VOLUME=$LAB-rows   # a named volume of db's
OWN_ENGINE=0
eng version >/dev/null 2>&1 || OWN_ENGINE=1

# Every container of this lab's nodes goes (the engine may serve others); the
# engine too if this test started it.
lab_cleanup() {
  local id
  for id in "${NODE_IDS[@]}"; do
    eng ps -aq --filter "label=com.docker.swarm.node.id=$id" | xargs -r docker -H "$ENGINE" rm -f -v >/dev/null
  done
  eng volume rm -f "$VOLUME" >/dev/null
  ((OWN_ENGINE == 0)) || "$ROOT/scripts/engine.sh" stop >/dev/null
}

require check "a Docker engine answers, with $IMAGE" "$ROOT/scripts/engine.sh" start
lab_setup 3
lab_swarm 3 --executor docker --docker-host "$ENGINE"
mapfile -t NODE_IDS < <(docker_on 1 node ls -q)
dk() { docker_on 1 "$@"; }
declare -A ADDR=()
for i in 1 2 3; do ADDR[$i]=$(lab addr "$i"); done

# --- helpers ------------------------------------------------------------------

# containers SERVICE [STATUS]: IDs of its containers (in STATUS, if given).
containers() {
  local filter=(--filter "label=com.docker.swarm.service.name=$1")
  [[ -z ${2:-} ]] || filter+=(--filter "status=$2")
  eng ps -aq "${filter[@]}"
}
count() { "$@" | grep -c . || true; }
running_tasks() {
  dk service ps "$1" --filter desired-state=running --format '{{.CurrentState}}' | grep -c '^Running' || true
}
page() { lab exec cl curl -sf --max-time 5 "http://${ADDR[$1]}:8080/"; }
# task_vs_container CONTAINER: "task node = container label" for one container.
task_vs_container() {
  local task label node
  task=$(eng inspect -f '{{index .Config.Labels "com.docker.swarm.task.id"}}' "$1") || return 1
  label=$(eng inspect -f '{{index .Config.Labels "com.docker.swarm.node.id"}}' "$1") || return 1
  node=$(dk inspect --type task -f '{{.NodeID}}' "$task") || return 1
  echo "task $task on $node, container labelled $label"
  [[ -n $node && $node == "$label" ]]
}

# --- services as containers ---------------------------------------------------------

check "overlay network back" dk network create -d overlay back
# db keeps its row in a named volume, a Docker volume.
# shellcheck disable=SC2016  # expanded in the container
check "service db: answers each connection on 3306 with the row in its volume" \
  dk service create --detach --name db --network back --stop-grace-period 1s \
  --mount "type=volume,source=$VOLUME,target=/rows" "$IMAGE" sh -c \
  'echo "row-7 from db task $(hostname)" >/rows/row && exec nc -ll -p 3306 -e cat /rows/row'
# Each connection to 8080 gets a page naming the web task and quoting db's row,
# fetched by name over the overlay (retried while db is not there yet).
# shellcheck disable=SC2016  # expanded in the container
WEB_PAGE='head -n 1 >/dev/null
printf "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nweb task: "; hostname
printf "db says: "
for try in 1 2 3 4 5 6 7 8 9 10; do
  nc -w 2 db 3306 </dev/null 2>/dev/null | grep . && exit
  sleep 1
done
echo "nothing: db:3306 unreachable"'
check "service web: 3 replicas of $IMAGE, published 8080" dk service create --detach \
  --name web --replicas 3 --network back -p 8080:8080 --stop-grace-period 1s "$IMAGE" \
  sh -c "echo web task \$(hostname) serving; exec nc -ll -p 8080 -e sh -c '$WEB_PAGE'"
WAIT=60 eventually check_match "web has 3 running tasks" '^3$' running_tasks web
eventually check_match "db has 1 running task" '^1$' running_tasks db
check_match "web runs as 3 running containers" '^3$' count containers web running
WEB_CONTAINERS=$(containers web running | sort)
FIRST=$(head -n 1 <<<"$WEB_CONTAINERS")
check_output "containers have network mode none" none \
  eng inspect -f '{{.HostConfig.NetworkMode}}' "$FIRST"
check_output "containers have no restart policy (restarts are shoal's)" no \
  eng inspect -f '{{.HostConfig.RestartPolicy.Name}}' "$FIRST"
for c in $WEB_CONTAINERS; do
  check "container ${c:0:12} belongs to its task's node (label)" task_vs_container "$c"
done
TASK=$(eng inspect -f '{{index .Config.Labels "com.docker.swarm.task.id"}}' "$FIRST")
task_container() { dk inspect --type task -f '{{.Status.ContainerStatus.ContainerID}}' "$TASK"; }
check_output "the task's ContainerStatus names its container" "$FIRST" task_container
BACK_ADDR=$(dk inspect --type task "$TASK" \
  -f '{{range .NetworksAttachments}}{{if eq .Network.Spec.Name "back"}}{{index .Addresses 0}}{{end}}{{end}}')
check_output "the container has its task's address on back ($BACK_ADDR)" "inet ${BACK_ADDR}" \
  eng exec "$FIRST" ip -4 addr
check_output "its resolv.conf names the embedded DNS (ndots:0)" "options ndots:0" \
  eng exec "$FIRST" cat /etc/resolv.conf
for i in 1 2 3; do
  eventually check_output "h$i:8080 answers through the mesh with db's row, fetched by name" \
    "db says: row-7 from db task" page "$i"
done
eventually check_output "service logs web: the containers' output" "serving" \
  dk service logs --raw web
# Following never ends by itself: 4 s of it.
follow_logs() { timeout 4 docker -H "unix://$(lab sock 1)" service logs -f --raw web || true; }
check_output "service logs -f web follows them" "serving" follow_logs
check_output "db's volume is a Docker volume" "volume $VOLUME /rows" \
  eng inspect -f '{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}' \
  "$(containers db running)"
check_output "...which docker volume ls shows through shoal" "$VOLUME" dk volume ls

# --- a missing image ---------------------------------------------------------------

check "service ghost: an image the engine does not have" dk service create --detach \
  --name ghost shoal-no-such-image:latest sh
ghost_error() { dk service ps ghost --no-trunc --format '{{.Error}}'; }
eventually check_output "service ps ghost: No such image" \
  "No such image: shoal-no-such-image:latest" ghost_error
check_match "no container for ghost" '^0$' count containers ghost
check "service rm ghost" dk service rm ghost
check "service broken: a program the image does not have" dk service create --detach \
  --name broken "$IMAGE" /no/such/program
broken_task() { dk service ps broken --no-trunc --format '{{.CurrentState}} | {{.Error}}'; }
eventually check_match "service ps broken: failed, starting container failed" \
  '^Failed .*starting container failed: .*/no/such/program' broken_task
check "service rm broken" dk service rm broken
eventually check_match "no container for broken is left" '^0$' count containers broken

# --- docker kill -----------------------------------------------------------------

KILLED=$FIRST
KILLED_TASK=$TASK
check "docker kill web container ${KILLED:0:12}" eng kill "$KILLED"
killed_state() { dk inspect --type task -f '{{.Status.State}} {{.Status.Err}}' "$KILLED_TASK"; }
eventually check_output "its task failed (exit 137)" "failed task: non-zero exit (137)" killed_state
WAIT=60 eventually check_match "web is back to 3 running tasks" '^3$' running_tasks web
eventually check_match "...in 3 running containers" '^3$' count containers web running
for i in 1 2 3; do
  eventually check_output "h$i:8080 still answers" "db says: row-7" page "$i"
done

# --- a daemon restart ------------------------------------------------------------

BEFORE=$(containers web running | sort)
H2=$(docker_on 2 info -f '{{.Swarm.NodeID}}')
on_h2() { eng ps -q --filter "label=com.docker.swarm.node.id=$H2" --filter status=running | sort; }
H2_BEFORE=$(on_h2)
check "kill -9 the daemon of h2" lab kill 2
require check "restart it on the same data dir" lab start 2 --executor docker --docker-host "$ENGINE"
h2_ready() { dk node inspect "$H2" -f '{{.Status.State}}'; }
eventually check_output "h2 is ready again" ready h2_ready
sleep 3   # the re-adopting agent has had its assignments
same_on_h2() { [[ -n $H2_BEFORE && $(on_h2) == "$H2_BEFORE" ]]; }
check "h2's running containers are the same ones (re-adopted)" same_on_h2
check_match "web still has 3 running containers, no duplicate" '^3$' count containers web running
same_containers() { [[ $(containers web running | sort) == "$BEFORE" ]]; }
check "...the same 3 as before the restart" same_containers
check_match "web has 3 running tasks" '^3$' running_tasks web

# --- service rm ------------------------------------------------------------------

check "service rm web db" dk service rm web db
eventually check_match "no web container is left" '^0$' count containers web
eventually check_match "no db container is left" '^0$' count containers db
check "the volume can be removed through shoal" dk volume rm "$VOLUME"
check_fails "...and is gone from the engine" "no such volume" eng volume inspect "$VOLUME"
