# shellcheck shell=bash
# Variables set here are used by the scripts that source this file.
# shellcheck disable=SC2034
# A library for the lab measurement scripts (sourced, not run): argument parsing, a docker
# CLI that talks to the lab only, the exit trap that tears the lab down, waits and summaries.
# The script sets MEASURE (its name, for messages) and RUNS (the default run count) first.

usage() { echo "usage: $0 [--runs N]" >&2; exit 2; }
die() { echo "$MEASURE: $*" >&2; exit 1; }
lab() { netlab/lab.sh "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# parse_args ARGS...: --runs N; and, where the script names one in REFERENCE_FLAG (e.g.
# --kernel-only), that flag, which sets REFERENCE_ONLY=1 (measure the reference alone).
# RUNS, and DURATION where the script has one, must be positive whole numbers.
REFERENCE_FLAG=''
REFERENCE_ONLY=0
parse_args() {
  while (($#)); do
    case $1 in
      --runs) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage; RUNS=$2; shift 2 ;;
      *) [[ -n $REFERENCE_FLAG && $1 == "$REFERENCE_FLAG" ]] || usage; REFERENCE_ONLY=1; shift ;;
    esac
  done
  [[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"
  [[ -z ${DURATION:-} || $DURATION =~ ^[1-9][0-9]*$ ]] ||
    die "DURATION must be whole seconds, got '$DURATION'"
}

declare -A SOCK=()      # host index -> its daemon's socket, looked up once
declare -A NODE_ID=()   # host index -> its swarm node ID

# The docker CLI talks to the lab only, with a throwaway config (made by the script's main).
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
DOCKER_CONFIG=''
export DOCKER_CLI_HINTS=false

dk() { timeout 60 docker -H "unix://${SOCK[$1]}" "${@:2}"; }

# measure_start: the docker CLI's throwaway config, and the traps that tear the
# lab down on every way out (finish below).
measure_start() {
  DOCKER_CONFIG=$(mktemp -d)
  export DOCKER_CONFIG
  trap finish EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
}

finish() {
  local rc=$?
  trap - EXIT INT TERM HUP
  # A failure (not an interrupt) shows what the daemons said.
  if ((rc != 0 && rc < 128)); then
    local log
    for log in "$LAB_DIR/$LAB"/h*/daemon.log; do
      [[ -s $log ]] || continue
      echo "--- last lines of $log" >&2
      tail -n 15 "$log" | sed 's/^/    | /' >&2
    done
  fi
  # A script that made more than the lab (e.g. namespaces of its own) defines
  # measure_cleanup to remove it.
  if declare -F measure_cleanup >/dev/null; then measure_cleanup || true; fi
  lab down >/dev/null 2>&1 || echo "$MEASURE: lab down failed; run LAB=$LAB netlab/lab.sh down" >&2
  [[ -z $DOCKER_CONFIG ]] || rm -rf -- "$DOCKER_CONFIG"
  exit "$rc"
}

# form_swarm ROLE N [DAEMON ARGS...]: starts daemons (given the args) on lab
# hosts h1..hN (the lab is up), h1 inits a swarm and h2..hN join it with ROLE's
# token (worker or manager); fills SOCK and NODE_ID, and SWARM_SINCE ($SECONDS
# at init).
SWARM_SINCE=0
form_swarm() {
  local role=$1 n=$2 i addr token
  for ((i = 1; i <= n; i++)); do
    lab start "$i" "${@:3}" >/dev/null
    SOCK[$i]=$(lab sock "$i")
  done
  addr=$(lab addr 1)
  dk 1 swarm init --advertise-addr "$addr" >/dev/null || die "h1: swarm init failed"
  SWARM_SINCE=$SECONDS
  token=$(dk 1 swarm join-token -q "$role") || die "h1: swarm join-token failed"
  for ((i = 2; i <= n; i++)); do
    dk "$i" swarm join --token "$token" "$addr:2377" >/dev/null || die "h$i: swarm join failed"
  done
  for ((i = 1; i <= n; i++)); do
    NODE_ID[$i]=$(dk 1 node inspect "h$i" --format '{{.ID}}')
  done
}

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds; die after SECONDS.
wait_for() {
  local what=$1 limit=$2 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${limit}s waiting for: $what"
    sleep 0.1
  done
}

# run_measure NAME FUNCTION: RUNS runs of FUNCTION (which prints one line
# ending "<figure> ms"), each line printed; the figures end up in FIGURES.
FIGURES=()
run_measure() {
  local run line
  FIGURES=()
  for ((run = 1; run <= RUNS; run++)); do
    line=$("$2" "$run")
    echo "$line"
    FIGURES+=("$(figure "$1" "$run" "$line")")
  done
}

# figure NAME RUN LINE: the figure of LINE, which ends "<figure> ms".
figure() {
  [[ $3 =~ ([0-9]+)\ ms$ ]] || die "$1 run $2: no figure in '$3'"
  echo "${BASH_REMATCH[1]}"
}

# stats MS...: "median X ms, min Y ms, max Z ms" (median of an even count:
# the mean of the middle two, rounded down).
stats() {
  local sorted n
  mapfile -t sorted < <(printf '%s\n' "$@" | sort -n)
  n=${#sorted[@]}
  local median=${sorted[n / 2]}
  ((n % 2)) || median=$(((sorted[n / 2 - 1] + sorted[n / 2]) / 2))
  echo "median $median ms, min ${sorted[0]} ms, max ${sorted[n - 1]} ms"
}

# --- a kernel VXLAN path between lab hosts ------------------------------------
# The reference for shoal's data plane: in a lab host's namespace a bridge kbr0
# and a kernel vxlan device kvx0 to one other host (VNI KVNI on UDP KPORT,
# beside shoal's own socket on 4789 in the same namespaces), and endpoint
# namespaces ($LAB-ep<I>, not lab.sh names) on veths into the bridge, all at
# MTU KMTU. Nothing touches the root namespace. A script that uses it calls
# kernel_cleanup from its measure_cleanup.
KVNI=42
KPORT=4790
KMTU=1450            # 1500 underlay - 50 VXLAN/UDP/IP/Ethernet, as Docker's overlay

host_ns() { echo "$LAB-h$1"; }
ep_ns() { echo "$LAB-ep$1"; }   # endpoint namespace on host I

# kernel_vxlan I OTHER: kbr0 and kvx0 (to host OTHER) in host I's namespace.
kernel_vxlan() {
  local h own other
  h=$(host_ns "$1") own=$(lab addr "$1") other=$(lab addr "$2")
  ip -n "$h" link add kbr0 mtu "$KMTU" type bridge
  ip -n "$h" link add kvx0 mtu "$KMTU" type vxlan id "$KVNI" dstport "$KPORT" \
    remote "$other" local "$own" dev eth0
  ip -n "$h" link set kvx0 master kbr0 up
  ip -n "$h" link set kbr0 up
}

# kernel_endpoint I ADDR/LEN: endpoint namespace $LAB-ep<I> with eth0 = ADDR/LEN
# on a veth into host I's kbr0.
kernel_endpoint() {
  local h ep
  h=$(host_ns "$1") ep=$(ep_ns "$1")
  ip netns add "$ep"
  ip -n "$ep" link set lo up
  # Made inside the host namespace, peer straight into the endpoint.
  ip -n "$h" link add kveth0 mtu "$KMTU" type veth peer name eth0 netns "$ep"
  ip -n "$h" link set kveth0 master kbr0 up
  ip -n "$ep" link set eth0 mtu "$KMTU" up
  ip -n "$ep" addr add "$2" dev eth0
}

# kernel_cleanup: kill the processes of this lab's endpoint namespaces and
# delete them (lab.sh knows nothing of them).
kernel_cleanup() {
  local ns pids
  for ns in $(ip netns list | awk '{print $1}'); do
    [[ $ns =~ ^"$LAB"-ep[0-9]+$ ]] || continue
    pids=$(ip netns pids "$ns" 2>/dev/null) || pids=''
    # shellcheck disable=SC2086  # one word per pid
    if [[ -n $pids ]]; then kill -KILL $pids 2>/dev/null || true; fi
    ip netns del "$ns" 2>/dev/null || echo "$MEASURE: could not delete namespace $ns" >&2
  done
}

# listening_port PORT CMD...: a TCP socket listens on PORT in the namespace CMD enters.
listening_port() { [[ -n $("${@:2}" ss -Hltn "sport = :$1") ]]; }

# median X...: of decimal figures (mean of the middle two for an even count).
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# One line: kernel, CPU, the daemon binary (resolved as netlab/lab.sh does)
# and the commit checked out here.
context() {
  local cpu bin=${SHOAL_BIN:-${CARGO_TARGET_DIR:-target}/release/shoal}
  cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  echo "context: $(uname -sr), ${cpu:-unknown CPU} x $(nproc)," \
    "daemon $(realpath "$bin" 2>/dev/null || echo "$bin"), repo at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
}

# run_all: every test of TESTS, RUNS times, each time on every path of PATHS in turn
# (interleaved, so that a slow moment of the machine hits all paths alike); the script defines
# `measure TEST PATH` (prints one figure), LABEL and UNIT (by test) and FIG (figures by
# "TEST PATH", filled here).
run_all() {
  local test run path x
  for test in "${TESTS[@]}"; do
    for ((run = 1; run <= RUNS; run++)); do
      local line="${LABEL[$test]} run $run:"
      for path in "${PATHS[@]}"; do
        x=$(measure "$test" "$path")
        FIG[$test $path]+=" $x"
        line+=" $path $x ${UNIT[$test]};"
      done
      echo "${line%;}"
    done
  done
}

# measure_two_hosts TOOL...: as root, with scripts/setup.sh's tools and each TOOL present, the
# exit traps set and an earlier, killed run's leftovers removed (the script's measure_cleanup),
# a fresh lab of h1 and h2.
measure_two_hosts() {
  [[ $(id -u) == 0 ]] || die "needs root (network namespaces)"
  scripts/setup.sh --no-build >/dev/null || die "scripts/setup.sh --no-build failed"
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || die "needs $tool"
  done
  measure_start
  measure_cleanup
  lab down >/dev/null 2>&1 || true
  lab up 2 >/dev/null
}

# --- HTTP tests against nginx: a small page, a large file ----------------------
# For the scripts that measure HTTP paths (bench-mesh, bench-vip). The script sets PAGE_TEXT
# (the small page's text), TARGET (nginx's port), CONNS (wrk's connections), DURATION and
# BULK_MB, fills URL (path -> base URL) and defines `client CMD...` (runs CMD where the client
# is). Its `measure TEST PATH` can be http_measure; its MED (by "TEST PATH") feeds ratio.

WORK=''   # $LAB_DIR/$LAB/$MEASURE: configs, the served files (goes with the lab)
declare -A URL=()   # path -> the base URL the client uses
declare -A FIG=()   # "TEST PATH" -> space-separated figures of each run
declare -A MED=()   # "TEST PATH" -> their median
declare -A UNIT=([ka]=req/s [close]=req/s [bulk]=Gbit/s)
declare -A LABEL=([ka]='keep-alive' [close]='new conn' [bulk]='bulk')
TESTS=(ka close bulk)
PATHS=()

# site: the served directory: index.html (small) and bulk.bin (BULK_MB MB, sparse).
site() {
  WORK=$LAB_DIR/$LAB/$MEASURE
  mkdir -p "$WORK/www"
  echo "$PAGE_TEXT" >"$WORK/www/index.html"
  truncate -s "${BULK_MB}M" "$WORK/www/bulk.bin"
}

# nginx_conf NAME: the path of a config for one nginx instance (own pid file;
# everything else alike): 1 worker, keep-alive without a request limit, no
# access log, sendfile for the large file. Master and worker run as root
# (they read files made by this script; the lab is root's anyway).
nginx_conf() {
  local conf=$WORK/nginx-$1.conf
  cat >"$conf" <<EOC
daemon off;
master_process on;
worker_processes 1;
user root;
pid $WORK/nginx-$1.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  types { text/html html; }
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {
    listen $TARGET backlog=4096;
    root $WORK/www;
  }
}
EOC
  nginx -t -q -c "$conf" >/dev/null 2>&1 || die "nginx rejects its config $conf: $(nginx -t -c "$conf" 2>&1)"
  echo "$conf"
}

# answers PATH: the small page comes back whole over PATH.
answers() {
  [[ $(client curl -sf --max-time 2 "${URL[$1]}/" 2>/dev/null) == "$PAGE_TEXT" ]]
}

# reach PATH WHAT LOG: wait (bounded, REACH_TIMEOUT seconds) until PATH answers; on a
# time-out, die with the last lines of the program's LOG.
reach() {
  local deadline=$((SECONDS + REACH_TIMEOUT))
  until answers "$1"; do
    if ((SECONDS >= deadline)); then
      echo "$MEASURE: last lines of $3:" >&2
      tail -n 5 "$3" 2>/dev/null | sed 's/^/    | /' >&2
      die "timed out after ${REACH_TIMEOUT}s waiting for $2 to answer at ${URL[$1]}/"
    fi
    sleep 0.1
  done
}

# wrk_rps PATH [HEADER]: requests/s of wrk on the small page; socket errors
# or non-2xx answers are reported on stderr (the figure still counts them out).
wrk_rps() {
  local out rps errs
  local args=(-t1 -c"$CONNS" -d"${DURATION}s")
  if (($# > 1)); then args+=(-H "$2"); fi
  out=$(client timeout $((DURATION + 30)) wrk "${args[@]}" "${URL[$1]}/" 2>&1) ||
    die "wrk over $1 failed: $(tail -n 3 <<<"$out")"
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  [[ $rps =~ ^[0-9.]+$ ]] || die "wrk over $1: no Requests/sec in its output: $out"
  errs=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr -s ' ' | paste -sd';' -) || true
  [[ -z $errs ]] || echo "  ($1${2:+, $2}: wrk says:$errs)" >&2
  printf '%.0f\n' "$rps"
}

# bulk PATH: Gbit/s of one download of the large file.
bulk() {
  local out size secs
  out=$(client curl -sf --max-time 600 -o /dev/null -w '%{size_download} %{time_total}' \
    "${URL[$1]}/bulk.bin") || die "curl of ${BULK_MB} MB over $1 failed (exit $?)"
  read -r size secs <<<"$out"
  ((size == BULK_MB * 1024 * 1024)) || die "curl over $1 got $size bytes, not ${BULK_MB} MB"
  awk -v b="$size" -v s="$secs" 'BEGIN { printf "%.2f\n", b * 8 / s / 1e9 }'
}

# http_measure TEST PATH: one figure of TEST (ka, close or bulk) over PATH.
http_measure() {
  case $1 in
    ka) wrk_rps "$2" ;;
    close) wrk_rps "$2" 'Connection: close' ;;
    bulk) bulk "$2" ;;
  esac
}

# medians: MED of every test and path from FIG.
medians() {
  local test path
  for test in "${TESTS[@]}"; do
    for path in "${PATHS[@]}"; do
      # shellcheck disable=SC2086  # one word per figure
      MED[$test $path]=$(median ${FIG[$test $path]})
    done
  done
}

div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# ratio TEST PATH REFERENCE: PATH's median over REFERENCE's, "n/a" without PATH's.
ratio() {
  local s=${MED[$1 $2]:-} r=${MED[$1 $3]}
  [[ -n $s ]] || { echo n/a; return; }
  div "$s" "$r"
}
