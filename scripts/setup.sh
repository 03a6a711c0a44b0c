#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (as root) for building and testing shoal,
# then build the release binary (--no-build: only install the tools, as the
# measurement scripts do). Safe to re-run: apt is skipped entirely when every
# tool is already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# command -> Debian package that provides it
declare -A PKG_FOR=(
  [ip]=iproute2 [iperf3]=iperf3 [curl]=curl [python3]=python3
  [busybox]=busybox-static [ps]=procps [pkill]=procps [killall]=psmisc
  [jq]=jq [nsenter]=util-linux [ss]=iproute2
  # scripts/bench-overlay.sh: request-response latency (netperf is not in
  # Debian main; sockperf is)
  [sockperf]=sockperf
  # scripts/bench-mesh.sh: an HTTP/1.1 keep-alive backend, a load generator and
  # the reference proxy; tests/lab/mesh.sh: a UDP echo backend
  [nginx]=nginx [wrk]=wrk [haproxy]=haproxy [socat]=socat
  # the docker CLI the lab tests drive shoal with; the engine (dockerd,
  # containerd, runc) for the docker executor's (scripts/engine.sh starts one)
  [docker]=docker.io [dockerd]=docker.io
)

missing_packages() {
  local cmd
  for cmd in "${!PKG_FOR[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || echo "${PKG_FOR[$cmd]}"
  done | sort -u
}

# nginx, haproxy and dockerd are programs for the lab here, never services of
# the machine: their packages would start them in the root namespace (nginx on
# port 80, dockerd with its bridge and iptables rules). A
# policy-rc.d that says 101 keeps invoke-rc.d (and so the packages' scripts)
# from starting anything while they install; one that was there is kept.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
no_service_starts() {
  [[ -e $POLICY ]] && return 0
  printf '#!/bin/sh\n# scripts/setup.sh: no service starts while it installs\nexit 101\n' >"$POLICY"
  chmod 0755 "$POLICY"
  OWN_POLICY=1
  trap allow_service_starts EXIT
}
allow_service_starts() {
  ((OWN_POLICY)) || return 0
  rm -f "$POLICY"
  OWN_POLICY=0
}

main() {
  local build=1
  case ${1:-} in
    '') ;;
    --no-build) build=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
  esac
  if [[ $(id -u) != 0 ]]; then
    echo "setup: must run as root (installs packages, lab tests need netns)" >&2
    exit 1
  fi
  local pkgs
  mapfile -t pkgs < <(missing_packages)
  if ((${#pkgs[@]})); then
    echo "setup: apt-get update"
    apt-get update -qq
    echo "setup: installing ${pkgs[*]}"
    no_service_starts
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${pkgs[@]}" >/dev/null
    allow_service_starts
  fi

  ((build)) || return 0
  echo "setup: cargo build --release --locked"
  cargo build --release --locked
}

main "$@"
