#!/usr/bin/env bash
# Demo: build shoal, make a four-host lab (the seed's cluster: one manager,
# three workers), start a daemon on each host, form the swarm and deploy the
# example stack with the stock docker CLI. The lab is left running for you to
# explore unless --down is given.
#
# Tasks run on the embedded process executor; with --docker they run as
# containers of a Docker engine all four hosts share (scripts/engine.sh starts
# one, off the machine's network, and imports a static busybox, tagged
# busybox:latest here so that the example's image is found).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LAB=${LAB:-shoal}

DOWN=false
EXECUTOR=(--executor process)
for arg in "$@"; do
  case $arg in
    --down) DOWN=true ;;
    --docker) EXECUTOR=(--executor docker --docker-host "$(scripts/engine.sh host)") ;;
    *) echo "usage: $0 [--down] [--docker]" >&2; exit 2 ;;
  esac
done
docker_executor() { [[ ${EXECUTOR[1]} == docker ]]; }

lab() { netlab/lab.sh "$@"; }
# dk I ARGS...: the docker CLI against host I's daemon, echoing the command.
dk() {
  local sock
  sock=$(lab sock "$1")
  echo "\$ docker -H unix://$sock ${*:2}" >&2
  docker -H "unix://$sock" "${@:2}"
}
# The indented lines under " Swarm:" in `docker info`.
swarm_section() { awk '/^ Swarm:/ {p = 1; print; next} p && /^  / {print; next} {p = 0}'; }

# The engine's containers of this lab's nodes (they live outside its namespaces).
remove_containers() {
  local engine id
  engine=$(scripts/engine.sh host)
  for id in "${NODE_IDS[@]}"; do
    docker -H "$engine" ps -aq --filter "label=com.docker.swarm.node.id=$id" |
      xargs -r docker -H "$engine" rm -f -v >/dev/null
  done
}

# Tear the lab down when asked to, or when the demo fails half-way.
finish() {
  local rc=$?
  if $DOWN || ((rc != 0)); then
    ((rc == 0)) || echo "demo failed (status $rc); tearing the lab down" >&2
    ! docker_executor || remove_containers
    lab down
  fi
}

scripts/setup.sh
lab down >/dev/null          # a previous demo's lab, if any
if docker_executor; then
  scripts/engine.sh start
  docker -H "$(scripts/engine.sh host)" tag shoal-busybox:latest busybox:latest
fi
NODE_IDS=()
trap finish EXIT
HOSTS=4
lab up "$HOSTS"
for i in $(seq 1 "$HOSTS"); do lab start "$i" "${EXECUTOR[@]}"; done
SOCK=$(lab sock 1)
ADDR=$(lab addr 1)

dk 1 swarm init --advertise-addr "$ADDR"
TOKEN=$(docker -H "unix://$SOCK" swarm join-token -q worker)
for i in $(seq 2 "$HOSTS"); do
  dk "$i" swarm join --token "$TOKEN" --advertise-addr "$(lab addr "$i")" "$ADDR:2377"
done
dk 1 node ls
dk 1 info | swarm_section
mapfile -t NODE_IDS < <(docker -H "unix://$SOCK" node ls -q)

# The seed's scenario: a stack from a compose file. examples/shop is the WordPress stack in
# miniature, from busybox (on the process executor the image names a program on the host): a
# `db` service and two `web` replicas published on 8080, each page quoting what the web
# task fetched from db:3306, found by name through the embedded DNS.
dk 1 stack deploy -c examples/shop/docker-compose.yml shop
running() { docker -H "unix://$SOCK" service ps "$1" -q --filter desired-state=running; }
# How many of its tasks have started.
started() {
  docker -H "unix://$SOCK" service ps "$1" --filter desired-state=running \
    --format '{{.CurrentState}}' | grep -c '^Running' || true
}
for _ in $(seq 150); do
  (($(started shop_web) == 2)) && (($(started shop_db) == 1)) && break
  sleep 0.2
done
dk 1 stack services shop
dk 1 stack ps shop
dk 1 network inspect shop_default --format '{{range .Peers}}{{.Name}} {{.IP}}{{println}}{{end}}'
if docker_executor; then
  echo "\$ docker -H $(scripts/engine.sh host) ps --filter label=com.docker.swarm.service.name" >&2
  docker -H "$(scripts/engine.sh host)" ps --filter label=com.docker.swarm.service.name \
    --format '{{.Names}}  {{.Image}}  {{.Status}}  node {{.Label "com.docker.swarm.node.id"}}'
fi

# The routing mesh: 8080 answers on every node's address, each request forwarded to a web
# task on whichever node runs it; the web task asks db by name over the overlay.
for i in $(seq 1 "$HOSTS"); do
  echo "\$ (in the client namespace) curl http://$(lab addr "$i"):8080/" >&2
  lab exec cl curl -s --retry 10 --retry-all-errors --retry-delay 1 "http://$(lab addr "$i"):8080/"
done

# Service discovery from inside a web task: the embedded DNS on the overlay's gateway.
task() { docker -H "unix://$SOCK" inspect --type task "$1" --format "$2"; }
mapfile -t webs < <(running shop_web)
node=$(task "${webs[0]}" '{{.NodeID}}')
host=$(docker -H "unix://$SOCK" node inspect "$node" --format '{{.Description.Hostname}}')
pid=$(task "${webs[0]}" '{{.Status.ContainerStatus.PID}}')
in_task() {
  echo "\$ (in task ${webs[0]} on $host) $*" >&2
  lab exec "${host#h}" nsenter --target "$pid" --net --mount "$@"
}
in_task cat /etc/resolv.conf
in_task busybox nslookup -type=a tasks.shop_web
in_task busybox nslookup -type=a db
# The other web task, over the userspace VXLAN overlay (on another host, or the same).
other=$(task "${webs[1]}" '{{range .NetworksAttachments}}{{if eq .Network.Spec.Name "shop_default"}}{{range .Addresses}}{{.}}{{end}}{{end}}{{end}}')
in_task busybox ping -c 3 "${other%/*}"

$DOWN && exit 0
prefix=''
[[ $LAB == shoal ]] || prefix="LAB=$LAB "
echo
echo "The lab '$LAB' is running: manager h1 at $ADDR, workers h2-h$HOSTS; logs in $(dirname "$(dirname "$SOCK")")/h*/daemon.log"
printf '  %-58s # %s\n' \
  "docker -H unix://$SOCK node ls" "the stock docker CLI" \
  "${prefix}netlab/lab.sh exec 1 ip addr" "a command inside h1" \
  "${prefix}netlab/lab.sh exec cl curl -s $ADDR:8080" "the shop's page, from the client" \
  "docker -H unix://$SOCK stack rm shop" "remove the stack (first, on --docker)" \
  "${prefix}netlab/lab.sh down" "tear the lab down"
