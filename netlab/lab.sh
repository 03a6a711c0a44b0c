#!/usr/bin/env bash
# netlab: a small network lab of shoal hosts in network namespaces.
#
#   ${LAB}-sw   the underlay switch: bridge br0, one port per host/client
#   ${LAB}-hI   host I (eth0 = 192.168.77.(10+I)/24), runs `shoal daemon`
#   ${LAB}-cl   a client that is not a node (eth0 = 192.168.77.100/24)
#
# Nothing is created in the root namespace: every veth is created inside the
# switch namespace with its peer placed straight into the host namespace.
# Host state (socket, data dir, log, pid) lives in ${LAB_DIR}/${LAB}/hI/.
set -euo pipefail
shopt -s inherit_errexit

LAB=${LAB:-shoal}
LAB_DIR=${LAB_DIR:-/tmp/shoal-lab}
STATE=$LAB_DIR/$LAB
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUBNET=192.168.77
START_TIMEOUT=${START_TIMEOUT:-20}   # seconds to wait for the daemon's _ping
STOP_TIMEOUT=${STOP_TIMEOUT:-10}     # seconds between SIGTERM and SIGKILL
MAX_HOSTS=89                         # .11 .. .99; .100 is the client

usage() {
  cat <<EOF
usage: LAB=name netlab/lab.sh COMMAND      (LAB=$LAB, LAB_DIR=$LAB_DIR)
  up N                 create switch, hosts h1..hN and client cl
  down                 kill this lab's processes, delete its namespaces and state
  start I [ARGS...]    start shoal daemon in host I (SHOAL_BIN overrides the binary)
  stop I | kill I      SIGTERM (then SIGKILL) | SIGKILL host I's daemon
  sock I | addr I      print host I's socket path | underlay address
  exec I|cl|sw CMD...  run CMD inside host I, the client or the switch
  ls                   list labs whose name starts with \$LAB
EOF
}

die() { echo "lab.sh: $*" >&2; exit 1; }

# --- names ---------------------------------------------------------------

ns_of() {  # host index, cl or sw -> namespace name
  case $1 in
    cl | sw) echo "$LAB-$1" ;;
    *) valid_index "$1" || die "bad host '$1' (want 1..$MAX_HOSTS, cl or sw)"
       echo "$LAB-h$1" ;;
  esac
}

valid_index() { [[ $1 =~ ^[1-9][0-9]*$ ]] && (($1 <= MAX_HOSTS)); }

addr_of() {
  case $1 in
    cl) echo "$SUBNET.100" ;;
    sw) die "the switch has no address" ;;
    *) echo "$SUBNET.$((10 + $1))" ;;
  esac
}

ns_exists() { [[ -e /run/netns/$1 ]]; }

# All namespaces of exactly this lab (not of labs whose name merely shares
# the prefix, e.g. shoal-t42-h1 is not part of lab "shoal").
lab_namespaces() {
  local ns
  for ns in $(ip netns list | awk '{print $1}'); do
    case ${ns#"$LAB"-} in
      "$ns") ;;                                   # no "$LAB-" prefix
      sw | cl) echo "$ns" ;;
      h*) if [[ ${ns#"$LAB"-h} =~ ^[0-9]+$ ]]; then echo "$ns"; fi ;;
    esac
  done
}

require_ns() { ns_exists "$1" || die "no namespace $1 (is lab '$LAB' up?)"; }

# --- up / down ------------------------------------------------------------

make_switch() {
  local sw=$LAB-sw
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 mtu 1500 type bridge   # STP off: ports forward at once
  ip -n "$sw" link set br0 up
}

# make_node NAME INDEX|cl: namespace NAME with eth0 on the switch's br0
make_node() {
  local ns=$LAB-$1 port=to-$1 sw=$LAB-sw
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$sw" link add "$port" mtu 1500 type veth peer name eth0 netns "$ns"
  ip -n "$sw" link set "$port" master br0 up
  ip -n "$ns" link set eth0 mtu 1500 up
  ip -n "$ns" addr add "$(addr_of "$2")/24" dev eth0
}

cmd_up() {
  local n=${1:-}
  valid_index "$n" || die "up: want a host count 1..$MAX_HOSTS, got '$n'"
  local existing
  existing=$(lab_namespaces | tr '\n' ' ')
  [[ -z $existing && ! -e $STATE ]] ||
    die "lab '$LAB' already exists (${existing:-state dir $STATE}); run: LAB=$LAB $0 down"
  # If any step fails, remove what was made so far.
  trap 'echo "lab.sh: up failed, removing partial lab" >&2; cmd_down >/dev/null 2>&1' EXIT
  make_switch
  local i
  for ((i = 1; i <= n; i++)); do
    make_node "h$i" "$i"
    mkdir -p "$STATE/h$i/data"
  done
  make_node cl cl
  trap - EXIT
  echo "lab '$LAB' up: h1..h$n at $(addr_of 1)..$(addr_of "$n"), client cl at $(addr_of cl)"
}

# Processes in namespace NS and all their descendants (a daemon's task may
# live in a namespace of its own): all of them belong to the lab.
ns_procs() {
  local roots
  roots=$(ip netns pids "$1" 2>/dev/null) || return 0
  [[ -n $roots ]] || return 0
  ps -e -o pid=,ppid= | awk -v roots="$roots" '
    { kids[$2] = kids[$2] " " $1 }
    END {
      n = split(roots, q)             # breadth-first walk from the roots
      for (i = 1; i <= n; i++) {
        print q[i]
        m = split(kids[q[i]], k)
        for (j = 1; j <= m; j++) q[++n] = k[j]
      }
    }' | live_pids
}

ns_empty() { [[ -z $(ns_procs "$1") ]]; }

# kill_ns_procs NS: TERM the namespace's processes, then KILL what is left.
kill_ns_procs() {
  local sig
  for sig in TERM KILL; do
    ns_empty "$1" && return 0
    # shellcheck disable=SC2046  # one word per pid
    kill "-$sig" $(ns_procs "$1") 2>/dev/null || true
    wait_until 5 ns_empty "$1" && return 0
  done
  echo "lab.sh: processes linger in $1" >&2
}

cmd_down() {
  local ns
  for ns in $(lab_namespaces); do kill_ns_procs "$ns"; done
  for ns in $(lab_namespaces); do ip netns del "$ns"; done
  [[ -n $LAB && -n $LAB_DIR ]] || die "refusing to remove '$STATE'"
  rm -rf -- "$STATE"
  rmdir -- "$LAB_DIR" 2>/dev/null || true   # only if no other lab uses it
  echo "lab '$LAB' down"
}

# --- daemons --------------------------------------------------------------

shoal_bin() {
  local bin=${SHOAL_BIN:-}
  if [[ -z $bin ]]; then
    bin=${CARGO_TARGET_DIR:-$ROOT/target}/release/shoal
    [[ -x $bin ]] || bin=$(command -v shoal) ||
      die "no shoal binary: build with 'cargo build --release' or set SHOAL_BIN"
  fi
  [[ -x $bin ]] || die "SHOAL_BIN '$bin' is not an executable"
  realpath "$bin"
}

host_dir() {
  valid_index "$1" || die "bad host index '$1'"
  [[ -d $STATE/h$1 ]] || die "no host h$1 in lab '$LAB' ($STATE/h$1 missing)"
  echo "$STATE/h$1"
}

# Drop zombies and gone pids from a list on stdin.
live_pids() {
  local pid
  # Alive while any of its threads is not a zombie: a killed process keeps its
  # files (a daemon's listening socket) until its last thread has exited.
  while read -r pid; do
    ps -L -o stat= -p "$pid" 2>/dev/null | grep -q '^[^Z]' && echo "$pid"
  done
  return 0
}

alive() { [[ -n $(echo "$1" | live_pids) ]]; }
gone() { ! alive "$1"; }

# The recorded pid of host I's daemon, if that process is alive and still in
# the host's namespace (guards against a stale pid file and pid reuse).
daemon_pid() {
  local dir=$1 ns=$2 pid
  pid=$(cat "$dir/daemon.pid" 2>/dev/null) || return 1
  alive "$pid" || return 1
  local want
  want="net:[$(stat -L -c %i "/run/netns/$ns")]"
  [[ $(readlink "/proc/$pid/ns/net") == "$want" ]] && echo "$pid"
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s until it succeeds or time runs out.
wait_until() {
  local tries=$(($1 * 10))
  shift
  until "$@"; do
    ((--tries > 0)) || return 1
    sleep 0.1
  done
}

pings() { curl -sf --max-time 2 --unix-socket "$1" http://localhost/_ping >/dev/null; }

# The daemon answers, or has exited (no point waiting for it then).
settled() { pings "$1" || gone "$2"; }

cmd_start() {
  local i=${1:-} dir ns bin pid
  dir=$(host_dir "$i")
  ns=$(ns_of "$i")
  shift
  require_ns "$ns"
  bin=$(shoal_bin)
  if pid=$(daemon_pid "$dir" "$ns"); then die "h$i: daemon already running (pid $pid)"; fi
  local sock=$dir/shoal.sock
  ((${#sock} < 100)) || die "socket path too long for a unix socket: $sock"
  # The process executor unless the caller names one: a Docker engine the
  # machine happens to run is never picked up by `auto`.
  local executor=(--executor process)
  [[ " $* " != *" --executor "* ]] || executor=()
  local argv=("$bin" daemon --socket "$sock" --data-dir "$dir/data" --hostname "h$i"
    "${executor[@]}" "$@")
  echo "=== $(date -Is) lab.sh start h$i: ${argv[*]}" >>"$dir/daemon.log"
  # setsid: the daemon gets its own session, so it outlives this script and a
  # Ctrl-C in the caller's terminal. No fork happens, so $! is the daemon.
  (cd "$dir" && exec ip netns exec "$ns" setsid "${argv[@]}" \
    </dev/null >>"$dir/daemon.log" 2>&1) &
  pid=$!
  echo "$pid" >"$dir/daemon.pid"
  wait_until "$START_TIMEOUT" settled "$sock" "$pid" || true
  if ! pings "$sock"; then
    if alive "$pid"; then
      echo "lab.sh: h$i: daemon did not answer /_ping within ${START_TIMEOUT}s" >&2
      kill -KILL "$pid" 2>/dev/null || true
    else
      echo "lab.sh: h$i: daemon exited before answering /_ping" >&2
    fi
    rm -f "$dir/daemon.pid"
    echo "last lines of $dir/daemon.log:" >&2
    tail -n 20 "$dir/daemon.log" | sed 's/^/  | /' >&2
    exit 1
  fi
  echo "h$i: shoal daemon pid $pid, socket $sock"
}

# stop_daemon I SIGNAL: signal host I's daemon, wait for it to go (bounded).
stop_daemon() {
  local dir ns pid
  dir=$(host_dir "$1")
  ns=$(ns_of "$1")
  pid=$(daemon_pid "$dir" "$ns") || die "h$1: no daemon running"
  kill "-$2" "$pid"
  if ! wait_until "$STOP_TIMEOUT" gone "$pid"; then
    echo "lab.sh: h$1: pid $pid ignored SIG$2 for ${STOP_TIMEOUT}s, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_until 5 gone "$pid" || die "h$1: pid $pid will not die"
  fi
  rm -f "$dir/daemon.pid"
}

# --- ls -------------------------------------------------------------------

cmd_ls() {
  local ns name
  declare -A members=()
  for ns in $(ip netns list | awk '{print $1}'); do
    [[ $ns == "$LAB"* && $ns =~ ^(.+)-(sw|cl|h[0-9]+)$ ]] || continue
    name=${BASH_REMATCH[1]}
    members[$name]+=" ${BASH_REMATCH[2]}"
  done
  for name in "${!members[@]}"; do
    printf '%-20s%s  (state: %s)\n' "$name" "${members[$name]}" "$LAB_DIR/$name"
  done | sort
}

# --- main -----------------------------------------------------------------

main() {
  [[ $LAB =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "bad LAB name '$LAB'"
  local cmd=${1:-}
  shift || true
  case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    start) cmd_start "$@" ;;
    stop) stop_daemon "${1:-}" TERM ;;
    kill) stop_daemon "${1:-}" KILL ;;
    sock) echo "$(host_dir "${1:-}")/shoal.sock" ;;
    addr) local ns; ns=$(ns_of "${1:-}"); require_ns "$ns"; addr_of "$1" ;;
    exec) local ns; ns=$(ns_of "${1:-}"); require_ns "$ns"; shift
      exec ip netns exec "$ns" "$@" ;;
    ls) cmd_ls ;;
    help | -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
