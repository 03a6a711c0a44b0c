#!/usr/bin/env bash
# The project's test command (run as root): setup and build, rustfmt, clippy,
# cargo test, then every lab test in tests/lab/. Every stage runs even if an
# earlier one failed; the last line is "lab: N passed, N failed" and the exit
# status is non-zero if anything failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LAB_TEST_TIMEOUT=${LAB_TEST_TIMEOUT:-900}   # seconds, per lab test file
SUMMARY_RE='^[A-Za-z0-9_.-]+: ([0-9]+) passed, ([0-9]+) failed$'
failed_stages=()
lab_passed=0
lab_failed=0
RUNNING=''   # pid of the lab test in progress

# On Ctrl-C or SIGTERM, let the running lab test tear its lab down first.
interrupted() {
  [[ -z $RUNNING ]] || { kill -TERM "$RUNNING" 2>/dev/null; wait "$RUNNING"; }
  exit 130
}
trap interrupted INT TERM

stage() {  # stage NAME CMD...
  echo "=== $1"
  "${@:2}" || { failed_stages+=("$1"); echo "=== $1: FAILED"; }
}

# run_lab_test FILE: run it, add up the "name: N passed, N failed" line it ends with.
run_lab_test() {
  local file=$1 log rc=0 line p=0 f=0
  echo "=== lab test $file"
  log=$(mktemp)
  # Output goes to a file, shown as it grows: a process the test leaked
  # cannot hold a pipe open and hang this script.
  timeout -k 30 "$LAB_TEST_TIMEOUT" bash "$file" </dev/null >"$log" 2>&1 &
  RUNNING=$!
  tail -n +1 -f --pid="$RUNNING" "$log" &
  local tail_pid=$!
  wait "$RUNNING" || rc=$?   # (a wait, unlike a foreground command, lets traps run)
  RUNNING=''
  wait "$tail_pid" || true   # tail ends by itself once the test has ended
  line=$(grep -E "$SUMMARY_RE" "$log" | tail -n 1) || true
  if [[ $line =~ $SUMMARY_RE ]]; then
    p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]}
  fi
  if ((rc != 0 && f == 0)); then
    echo "=== $file exited with status $rc without reporting a failure (timeout is 124)"
    f=1
  fi
  rm -f "$log"
  lab_passed=$((lab_passed + p))
  lab_failed=$((lab_failed + f))
}

main() {
  stage setup scripts/setup.sh
  stage fmt cargo fmt --check
  stage clippy cargo clippy --all-targets --locked -- -D warnings
  stage cargo-test cargo test --locked
  local file
  for file in tests/lab/*.sh; do
    [[ $file == tests/lab/lib.sh ]] || run_lab_test "$file"
  done
  echo
  if ((${#failed_stages[@]})); then echo "failed stages: ${failed_stages[*]}"; fi
  echo "lab: $lab_passed passed, $lab_failed failed"
  ((${#failed_stages[@]} == 0 && lab_failed == 0))
}

main "$@"
