#!/usr/bin/env bash
# Demo: build shoal, make a one-host lab, start the daemon there and create a
# swarm with the stock docker CLI. The lab is left running for you to explore
# unless --down is given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LAB=${LAB:-shoal}

case ${1:-} in
  --down) DOWN=true ;;
  "") DOWN=false ;;
  *) echo "usage: $0 [--down]" >&2; exit 2 ;;
esac

lab() { netlab/lab.sh "$@"; }
dk() { echo "\$ docker -H unix://$SOCK $*" >&2; docker -H "unix://$SOCK" "$@"; }
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
lab up 1
lab start 1
SOCK=$(lab sock 1)
ADDR=$(lab addr 1)

dk swarm init --advertise-addr "$ADDR"
dk node ls
dk info | swarm_section

$DOWN && exit 0
prefix=''
[[ $LAB == shoal ]] || prefix="LAB=$LAB "
echo
echo "The lab '$LAB' is running: host h1 at $ADDR, log in $(dirname "$SOCK")/daemon.log"
printf '  %-58s # %s\n' \
  "docker -H unix://$SOCK node ls" "the stock docker CLI" \
  "${prefix}netlab/lab.sh exec 1 ip addr" "a command inside h1" \
  "${prefix}netlab/lab.sh down" "tear the lab down"
