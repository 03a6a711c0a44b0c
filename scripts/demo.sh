#!/usr/bin/env bash
# Demo: build shoal, make a four-host lab (the seed's cluster: one manager,
# three workers), start a daemon on each host, form the swarm and run a service
# with the stock docker CLI. The lab is left running for you to explore unless
# --down is given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LAB=${LAB:-shoal}

case ${1:-} in
  --down) DOWN=true ;;
  "") DOWN=false ;;
  *) echo "usage: $0 [--down]" >&2; exit 2 ;;
esac

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

# Tear the lab down when asked to, or when the demo fails half-way.
finish() {
  local rc=$?
  if $DOWN || ((rc != 0)); then
    ((rc == 0)) || echo "demo failed (status $rc); tearing the lab down" >&2
    lab down
  fi
}

scripts/setup.sh
lab down >/dev/null          # a previous demo's lab, if any
trap finish EXIT
HOSTS=4
lab up "$HOSTS"
for i in $(seq 1 "$HOSTS"); do lab start "$i"; done
SOCK=$(lab sock 1)
ADDR=$(lab addr 1)

dk 1 swarm init --advertise-addr "$ADDR"
TOKEN=$(docker -H "unix://$SOCK" swarm join-token -q worker)
for i in $(seq 2 "$HOSTS"); do
  dk "$i" swarm join --token "$TOKEN" --advertise-addr "$(lab addr "$i")" "$ADDR:2377"
done
dk 1 node ls
dk 1 info | swarm_section

# A replicated service: 8 tasks spread 2 per node. With the embedded process executor the
# image names a program on the host, run in its own namespaces.
dk 1 network create -d overlay demo
# shellcheck disable=SC2016 # expanded by the task's shell
dk 1 service create --name hello --replicas 8 --network demo --stop-grace-period 1s \
  sh -c 'echo hello from $(hostname) at $(ip -o -4 addr show eth0 | cut -d" " -f7); sleep infinity'
dk 1 service ps hello
dk 1 service logs hello
dk 1 network inspect demo --format '{{range .Peers}}{{.Name}} {{.IP}}{{println}}{{end}}'

# Two tasks on different hosts talk over the userspace VXLAN overlay: enter the
# first task's network namespace and ping the last task's overlay address.
task() { docker -H "unix://$SOCK" inspect --type task "$1" --format "$2"; }
mapfile -t tasks < <(docker -H "unix://$SOCK" service ps hello -q --filter desired-state=running)
first=${tasks[0]} node=$(task "${tasks[0]}" '{{.NodeID}}')
for last in "${tasks[@]}"; do [[ $(task "$last" '{{.NodeID}}') == "$node" ]] || break; done
pid=$(task "$first" '{{.Status.ContainerStatus.PID}}')
host=$(docker -H "unix://$SOCK" node inspect "$node" --format '{{.Description.Hostname}}')
target=$(task "$last" '{{range .NetworksAttachments}}{{range .Addresses}}{{.}}{{end}}{{end}}')
echo "\$ (in task $first on $host) busybox ping -c 3 ${target%/*}" >&2
lab exec "${host#h}" nsenter --target "$pid" --net busybox ping -c 3 "${target%/*}"

# The routing mesh: a web service of 2 tasks published on 8080 answers on every node's
# address, each request forwarded to a task on whichever node runs it.
# shellcheck disable=SC2016 # expanded by the task's shell
dk 1 service create --name web --replicas 2 --publish 8080:80 --stop-grace-period 1s \
  sh -c 'd=$(mktemp -d); echo "hello from $(hostname)" >"$d/index.html"; exec busybox httpd -f -p 80 -h "$d"'
for i in $(seq 1 "$HOSTS"); do
  echo "\$ (in the client namespace) curl http://$(lab addr "$i"):8080/" >&2
  lab exec cl curl -s --retry 5 --retry-connrefused --retry-delay 1 "http://$(lab addr "$i"):8080/"
done

$DOWN && exit 0
prefix=''
[[ $LAB == shoal ]] || prefix="LAB=$LAB "
echo
echo "The lab '$LAB' is running: manager h1 at $ADDR, workers h2-h$HOSTS; logs in $(dirname "$(dirname "$SOCK")")/h*/daemon.log"
printf '  %-58s # %s\n' \
  "docker -H unix://$SOCK node ls" "the stock docker CLI" \
  "${prefix}netlab/lab.sh exec 1 ip addr" "a command inside h1" \
  "${prefix}netlab/lab.sh exec cl curl -s $ADDR:8080" "the published port, from the client" \
  "${prefix}netlab/lab.sh down" "tear the lab down"
