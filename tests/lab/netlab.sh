#!/usr/bin/env bash
# The lab itself: namespaces, underlay, isolation, daemon plumbing (with
# fake_shoal.py standing in for the daemon), teardown, and the harness's own
# teardown when a test fails or is killed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
HERE=$ROOT/tests/lab
FAKE=$HERE/fake_shoal.py

lab_setup 3

# --- topology ---------------------------------------------------------------
# This lab's namespaces, sorted, on one line ("" when there are none).
lab_ns_list() {
  ip netns list | awk '{print $1}' | { grep -E "^$LAB-(sw|cl|h[0-9]+)\$" || true; } |
    sort | tr '\n' ' '
}
check_output "namespaces sw, h1..h3, cl exist" "$LAB-cl $LAB-h1 $LAB-h2 $LAB-h3 $LAB-sw" lab_ns_list
check_fails "a second 'up' is refused" "already exists" lab up 3
check_output "ls shows the lab" "$LAB" lab ls

for h in 1 2 3 cl; do
  want=$(lab addr "$h")
  check_output "$h: eth0 has $want/24" "inet $want/24" lab exec "$h" ip -4 -o addr show dev eth0
done
check_output "h1: eth0 MTU 1500" "1500" lab exec 1 cat /sys/class/net/eth0/mtu
check_output "h2: lo is up" "LOOPBACK,UP" lab exec 2 ip -o link show lo
check_output "switch: br0 exists with MTU 1500" "mtu 1500" lab exec sw ip -o link show br0
check_output "switch: h3's port is on br0" "master br0" lab exec sw ip -o link show to-h3
check_output "sock 1" "$LAB_DIR/$LAB/h1/shoal.sock" lab sock 1
check_output "addr 2" "192.168.77.12" lab addr 2
check_output "addr cl" "192.168.77.100" lab addr cl
check_fails "addr of a missing host fails" "no namespace" lab addr 9

# --- underlay traffic ---------------------------------------------------------
ping_from() { lab exec "$1" busybox ping -c 1 -W 2 "$(lab addr "$2")"; }
for pair in "1 2" "2 3" "3 1" "cl 1" "1 cl"; do
  read -r a b <<<"$pair"
  check_output "ping $a -> $b" "1 packets received" ping_from "$a" "$b"
done

# iperf3 server in h2 for one test, client in h1.
(lab exec 2 iperf3 -s -1 || true) >/dev/null 2>&1 &
listening() { lab exec 2 ss -Hltn 'sport = :5201'; }
eventually check_output "iperf3 server listens in h2" "5201" listening
iperf_bytes() { lab exec 1 iperf3 -c "$(lab addr 2)" -t 1 -J | jq -e '.end.sum_received.bytes > 0'; }
check_output "iperf3 h1 -> h2 moves data" "true" iperf_bytes

# --- isolation: nothing of the lab in the root namespace, no way out --------
root_clean() {
  ! ip -o addr | grep -F '192.168.77.' && ! ip -o link | grep -E ': (br0|to-[a-z0-9]+)[@:]'
}
check "root namespace has no lab addresses or links" root_clean
check_fails "hosts have no route out of the lab" "unreachable" lab exec 1 ip route get 203.0.113.1

# --- daemon plumbing, with the fake daemon ----------------------------------
fake() { SHOAL_BIN=$FAKE lab "$@"; }
pid_of() { cat "$LAB_DIR/$LAB/h$1/daemon.pid"; }
ping_sock() { curl -sf --max-time 5 --unix-socket "$(lab sock "$1")" http://localhost/_ping; }
netns_of() { readlink "/proc/$1/ns/net"; }
in_h1() { [[ $(netns_of "$(pid_of 1)") == "$(lab exec 1 readlink /proc/self/ns/net)" ]]; }
# Gone or a zombie (this machine's pid 1 may be slow to reap orphans).
is_gone() { local st; st=$(ps -o stat= -p "$1") || true; [[ -z $st || $st == Z* ]]; }

require check "start 1 (fake daemon)" fake start 1
check_output "its socket answers _ping" "OK" ping_sock 1
check "the daemon runs inside h1's namespace" in_h1
check_output "it got --hostname h1 --executor process" "hostname=h1" cat "$LAB_DIR/$LAB/h1/daemon.log"
check_fails "a second start is refused" "already running" fake start 1
pid=$(pid_of 1)
check "kill 1" fake kill 1
check "the daemon is gone after kill" is_gone "$pid"
check "restart over the stale socket" fake start 1
check "stop 1" fake stop 1
check_fails "stop with no daemon fails" "no daemon running" fake stop 1
FAKE_SHOAL_IGNORE_TERM=1 check "start 2 (ignores SIGTERM)" fake start 2
STOP_TIMEOUT=1 check_output "stop escalates to SIGKILL" "SIGKILL" fake stop 2
SHOAL_BIN=/bin/false check_fails "a daemon that exits is reported with its log" \
  "exited before answering" lab start 3
check_fails "a missing binary is reported" "not an executable" env SHOAL_BIN=/nonexistent "$ROOT/netlab/lab.sh" start 3

# --- down -----------------------------------------------------------------
require check "start 3 (left running for down)" fake start 3
pid=$(pid_of 3)
# (Background jobs get no stdout/stderr: nothing may hold the test's output
# open, and no "Terminated" notice.)
(lab exec cl sleep 600 || true) >/dev/null 2>&1 &
# A task in a network namespace of its own, child of a process in h2.
TASK="sleep $((100000 + $$))"
(lab exec 2 bash -c "unshare -n $TASK & wait" || true) >/dev/null 2>&1 &
task_running() { pgrep -fx "$TASK" >/dev/null; }
eventually check "a task runs in its own namespace under h2" task_running
check "down" lab down
check_match "down leaves no namespaces" '^$' lab_ns_list
check "down kills the daemon" is_gone "$pid"
check "down kills the task in its own namespace" eval '! task_running'
check "down removes the state dir" test ! -e "$LAB_DIR/$LAB"
check "down of a missing lab succeeds" lab down
wait   # the background exec jobs ended with the namespaces' processes

half_made() { ip netns add "$LAB-sw" && ip netns add "$LAB-h2" && mkdir -p "$LAB_DIR/$LAB/h2"; }
check "make a half-made lab" half_made
check "down removes a half-made lab" lab down
check_match "nothing of it is left" '^$' lab_ns_list
check_fails "a failing up reports it" "removing partial lab" \
  env LAB_DIR=/dev/null/x "$ROOT/netlab/lab.sh" up 2
check_match "and leaves no namespaces" '^$' lab_ns_list

# --- the harness tears down a failing or killed test -------------------------
child=$(mktemp --suffix=.sh)
run_child() {  # run_child BODY: run BODY as a test file in the background
  # shellcheck disable=SC2016  # $LAB is expanded by the child
  printf 'set -euo pipefail\nsource %q\necho "lab=$LAB"\n%s\n' "$HERE/lib.sh" "$1" >"$child"
  bash "$child" >"$child.out" 2>&1 &
  CHILD=$!
}
finish_child() { wait "$CHILD" && CHILD_RC=0 || CHILD_RC=$?; }
child_lab() { sed -n 's/^lab=//p' "$child.out"; }   # the first line it prints
# Namespaces left by the child's lab.
child_ns() {
  local name
  name=$(child_lab)
  [[ -n $name ]] || { echo "child printed no lab name"; return 1; }
  ip netns list | awk '{print $1}' | { grep -F "$name-" || true; }
}

run_child 'lab_setup 1; check "deliberate failure" false'
finish_child
check "a failing test exits 1" test "$CHILD_RC" = 1
check_output "and reports the failure" "1 passed, 1 failed" cat "$child.out"
check_match "and leaves no namespaces" '^$' child_ns

run_child 'lab_setup 1; false; echo unreachable'
finish_child
check "a test aborted by set -e exits 1" test "$CHILD_RC" = 1
check_output "and counts as failed" "stopped early" cat "$child.out"
check_match "and leaves no namespaces" '^$' child_ns

run_child "lab_setup 1; SHOAL_BIN=$FAKE lab start 1; touch $child.ready
while :; do sleep 0.1; done"
eventually check "a long test gets its lab and daemon up" test -e "$child.ready"
cpid=$(cat "$LAB_DIR/$(child_lab)/h1/daemon.pid" 2>/dev/null || echo 0)
kill -TERM "$CHILD"
finish_child
check "SIGTERM ends it with status 1" test "$CHILD_RC" = 1
check_output "reported as stopped by the signal" "exit status 143" cat "$child.out"
check_match "and leaves no namespaces" '^$' child_ns
check "and no daemon" is_gone "$cpid"
rm -f "$child" "$child.out" "$child.ready"
