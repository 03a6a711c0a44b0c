#!/usr/bin/env bash
# A Docker engine of shoal's own, for the docker executor's lab test and demo
# (run as root):
#
#   scripts/engine.sh start    install Debian's docker.io where dockerd is
#                              missing (scripts/setup.sh), start an engine at $ENGINE_SOCK unless
#                              one answers there, import the test image
#   scripts/engine.sh image    (re)build the test image $ENGINE_IMAGE
#   scripts/engine.sh stop     stop the engine this script started
#   scripts/engine.sh host     print the engine's address (for --docker-host)
#
# The engine keeps off the machine's network: no bridge, no iptables rules,
# no IP masquerading (containers get network mode `none`; shoal plumbs them),
# its own socket, data and state directories, so it never meets a Docker
# engine the machine may run. It never pulls: the test image is a static
# busybox imported from a rootfs tarball.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ENGINE_DIR=${ENGINE_DIR:-/run/shoal-engine}
ENGINE_SOCK=${ENGINE_SOCK:-$ENGINE_DIR/docker.sock}
ENGINE_DATA=${ENGINE_DATA:-/var/lib/shoal-engine}
ENGINE_IMAGE=${ENGINE_IMAGE:-shoal-busybox:latest}
START_TIMEOUT=${START_TIMEOUT:-60}   # seconds for the engine to answer
PIDFILE=$ENGINE_DIR/dockerd.pid
LOG=$ENGINE_DIR/dockerd.log

die() { echo "engine.sh: $*" >&2; exit 1; }
engine() { docker -H "unix://$ENGINE_SOCK" "$@"; }
answers() { engine version >/dev/null 2>&1; }

# Debian 12's docker.io brings dockerd, containerd and runc; scripts/setup.sh
# installs it with the rest (and keeps its package scripts from starting the
# machine's own engine).
install_engine() {
  command -v dockerd >/dev/null 2>&1 || scripts/setup.sh --no-build
  command -v dockerd >/dev/null 2>&1 || die "no dockerd after scripts/setup.sh"
}

start_engine() {
  mkdir -p "$ENGINE_DIR" "$ENGINE_DATA"
  if answers; then
    echo "engine.sh: an engine answers at unix://$ENGINE_SOCK"
    return 0
  fi
  echo "=== $(date -Is) engine.sh start" >>"$LOG"
  setsid dockerd --host "unix://$ENGINE_SOCK" --data-root "$ENGINE_DATA" \
    --exec-root "$ENGINE_DIR/exec" --pidfile "$PIDFILE" \
    --bridge none --iptables=false --ip6tables=false --ip-masq=false \
    --userland-proxy=false </dev/null >>"$LOG" 2>&1 &
  local waited=0
  until answers; do
    if ((waited >= START_TIMEOUT)) || ! kill -0 $! 2>/dev/null; then
      tail -n 20 "$LOG" | sed 's/^/  | /' >&2
      die "the engine did not answer at unix://$ENGINE_SOCK"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "engine.sh: engine up at unix://$ENGINE_SOCK (log $LOG)"
}

# A rootfs of one static busybox and its applets, imported as an image whose
# default command is a shell.
build_image() {
  local busybox rootfs
  busybox=$(command -v busybox) || die "no busybox (scripts/setup.sh installs busybox-static)"
  # (ldd fails on a static binary)
  ! ldd "$busybox" >/dev/null 2>&1 ||
    die "$busybox is not statically linked (install busybox-static)"
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{bin,etc,tmp,www,proc,sys,dev}
  cp "$busybox" "$rootfs/bin/busybox"
  local applet
  for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
  done
  echo 'root:x:0:0:root:/:/bin/sh' >"$rootfs/etc/passwd"
  echo 'root:x:0:' >"$rootfs/etc/group"
  tar -C "$rootfs" -c . | engine import \
    --change 'ENV PATH=/bin' --change 'CMD ["sh"]' - "$ENGINE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  echo "engine.sh: image $ENGINE_IMAGE built from $busybox"
}

ensure_image() {
  engine image inspect "$ENGINE_IMAGE" >/dev/null 2>&1 || build_image
}

stop_engine() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || { echo "engine.sh: no engine of ours runs"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null && ((waited < 30)); do
    sleep 1
    waited=$((waited + 1))
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  echo "engine.sh: engine stopped"
}

case ${1:-} in
  start) install_engine; start_engine; ensure_image ;;
  image) answers || die "no engine answers at unix://$ENGINE_SOCK (run: $0 start)"; build_image ;;
  stop) stop_engine ;;
  host) echo "unix://$ENGINE_SOCK" ;;
  *) echo "usage: $0 start|image|stop|host" >&2; exit 2 ;;
esac
