# shellcheck shell=bash
# Harness for the lab tests, sourced by tests/lab/*.sh (which run as root).
#
#   check        "what" CMD...           CMD exits 0
#   check_output "what" SUBSTRING CMD... CMD exits 0 and prints SUBSTRING
#   check_match  "what" REGEX CMD...     CMD exits 0 and its whole output
#                                        matches the bash ERE (^/$ = whole output)
#   check_fails  "what" SUBSTRING CMD... CMD exits non-zero and prints SUBSTRING
#   eventually CHECK...   retry the check (silently) until it holds, up to
#                         $WAIT seconds (default 20), then report once
#   require CHECK...      abort the test file if the check fails
#
# Output (stdout and stderr) of the last CMD is in $OUT, its status in $RC.
# A test file may define lab_cleanup, run before the lab is torn down.
# Each test file gets its own lab LAB=shoal-t<pid>; it is torn down on every
# exit path (success, failure, abort, SIGTERM/SIGINT/SIGHUP) and the file
# ends with "<name>: N passed, N failed", which scripts/test.sh adds up.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TEST_NAME=$(basename "$0" .sh)
PASSED=0
FAILED=0
CMD_TIMEOUT=${CMD_TIMEOUT:-60}   # bound on each docker/shoal client command
OUT='' RC=0

# Our own lab, never one inherited from the caller's environment.
export LAB=shoal-t$$
export LAB_DIR=${LAB_DIR:-/tmp/shoal-lab}
# The docker CLI must talk to the lab only, with a throwaway config.
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
DOCKER_CONFIG=$(mktemp -d)
export DOCKER_CONFIG DOCKER_CLI_HINTS=false

lab() { "$ROOT/netlab/lab.sh" "$@"; }

# --- assertions -----------------------------------------------------------

pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }

fail() {  # fail "what" [details]
  FAILED=$((FAILED + 1))
  echo "FAIL - $1"
  local line
  if [[ -n ${2:-} ]]; then
    while IFS= read -r line; do printf '    | %s\n' "$line"; done <<<"$2"
  fi
}

# _holds KIND WANT CMD...: run CMD into OUT/RC, say whether the assertion holds.
_holds() {
  local kind=$1 want=$2
  shift 2
  OUT=$("$@" 2>&1 </dev/null) && RC=0 || RC=$?
  case $kind in
    ok) ((RC == 0)) ;;
    output) ((RC == 0)) && [[ $OUT == *"$want"* ]] ;;
    match) ((RC == 0)) && [[ $OUT =~ $want ]] ;;
    fails) ((RC != 0)) && [[ $OUT == *"$want"* ]] ;;
  esac
}

_check() {  # _check "what" KIND WANT CMD...
  local what=$1 kind=$2 want=$3
  shift 3
  local deadline=$((SECONDS + ${EVENTUALLY:-0}))
  until _holds "$kind" "$want" "$@"; do
    if ((SECONDS >= deadline)); then
      local expect
      case $kind in
        ok) expect="exit 0" ;;
        output) expect="exit 0 and output containing: $want" ;;
        match) expect="exit 0 and output matching: $want" ;;
        fails) expect="failure with output containing: $want" ;;
      esac
      ((${EVENTUALLY:-0} == 0)) || expect+=" (retried for ${EVENTUALLY}s)"
      fail "$what" "\$ $*"$'\n'"expected $expect; got exit $RC, output:"$'\n'"$OUT"
      return 0
    fi
    sleep 0.2
  done
  pass "$what"
}

check() { _check "$1" ok "" "${@:2}"; }
check_output() { _check "$1" output "$2" "${@:3}"; }
check_match() { _check "$1" match "$2" "${@:3}"; }
check_fails() { _check "$1" fails "$2" "${@:3}"; }
eventually() { EVENTUALLY=${WAIT:-20} "$@"; }

require() {
  local before=$FAILED
  "$@"
  ((FAILED == before)) || { echo "aborting $TEST_NAME: a required check failed"; exit 1; }
}

# --- lab helpers ----------------------------------------------------------

# lab_setup N: a fresh lab of N hosts for this test file.
lab_setup() {
  lab down >/dev/null 2>&1 || true   # a leftover of a dead run with our pid
  require check "lab up $1" lab up "$1"
}

# lab_swarm N [DAEMON ARGS...]: daemons on h1..hN (given the args), a swarm of
# h1 (its manager) and the others (workers), every node Ready; aborts the test
# file otherwise.
lab_swarm() {
  local n=$1 i token
  for i in $(seq 1 "$n"); do require check "daemon starts in h$i" lab start "$i" "${@:2}"; done
  require check "swarm init on h1" docker_on 1 swarm init --advertise-addr "$(lab addr 1)"
  token=$(docker_on 1 swarm join-token -q worker) || token=none
  for i in $(seq 2 "$n"); do
    require check "h$i joins" docker_on "$i" swarm join --token "$token" "$(lab addr 1):2377"
  done
  require eventually check_match "h1..h$n Ready" "^$n\$" _ready_nodes
}
_ready_nodes() { docker_on 1 node ls --format '{{.Status}}' | grep -c '^Ready$'; }

# The shoal binary, resolved as netlab/lab.sh does.
shoal_path() {
  local bin=${SHOAL_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/shoal}
  [[ -x $bin ]] || bin=$(command -v shoal) || { echo "no shoal binary" >&2; return 1; }
  echo "$bin"
}

shoal_cli() { timeout "$CMD_TIMEOUT" "$(shoal_path)" "$@"; }

# docker_on I ARGS...: the stock docker CLI against host I's socket.
docker_on() { timeout "$CMD_TIMEOUT" docker -H "unix://$(lab sock "$1")" "${@:2}"; }

# api I METHOD PATH [BODY]: one raw request on host I's socket; prints
# "HTTP <status> message: <.message>" for a JSON error body, else
# "HTTP <status> body: <body>".
api() {
  local sock body status msg data=()
  sock=$(lab sock "$1") || return 1
  if (($# >= 4)); then data=(-H 'Content-Type: application/json' --data-binary "$4"); fi
  body=$(mktemp)
  status=$(curl -s --max-time 10 -o "$body" -w '%{http_code}' --unix-socket "$sock" \
    -X "$2" "${data[@]}" "http://localhost$3") || { rm -f "$body"; return 1; }
  if msg=$(jq -er '.message | strings' <"$body" 2>/dev/null); then
    echo "HTTP $status message: $msg"
  else
    echo "HTTP $status body: $(head -c 300 "$body")"
  fi
  rm -f "$body"
}

# --- teardown -------------------------------------------------------------

_show_logs() {
  local log
  for log in "$LAB_DIR/$LAB"/h*/daemon.log; do
    [[ -s $log ]] || continue
    echo "--- last lines of $log"
    tail -n 30 "$log" | sed 's/^/    | /'
  done
}

_finish() {
  local rc=$?
  trap - EXIT INT TERM HUP
  ((rc == 0 || FAILED > 0)) || fail "$TEST_NAME stopped early (exit status $rc)"
  ((FAILED == 0)) || _show_logs
  # A test file's own clean-up (what lives outside the lab's namespaces).
  if declare -F lab_cleanup >/dev/null; then lab_cleanup || fail "lab_cleanup"; fi
  lab down >/dev/null 2>&1 || fail "lab down" "$(lab down 2>&1)"
  rm -rf "$DOCKER_CONFIG"
  echo "$TEST_NAME: $PASSED passed, $FAILED failed"
  ((FAILED == 0)) || exit 1
  exit 0
}

trap _finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

[[ $(id -u) == 0 ]] || { echo "$TEST_NAME: lab tests need root" >&2; exit 1; }
