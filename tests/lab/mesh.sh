#!/usr/bin/env bash
# The ingress routing mesh, driven by the stock docker CLI on four hosts (h1
# manager, h2-h4 workers) and reached from the lab's client namespace cl: a
# published port answers on every node and spreads connections over the
# service's tasks wherever they run; the service shows its ports and a virtual
# IP on ingress; a port in use is refused; a port left unnumbered gets one
# from 30000-32767; a killed task gets no new connection; UDP is carried too;
# PROXY protocol v2 is prepended only when the service asks for it; a
# host-mode port answers only on the node running its task; `service rm`
# closes the port on every node.
#
# Web tasks are busybox httpd on the process executor, each serving a page
# with its hostname: the process executor's default hostname is the first 12
# characters of the task ID (no --hostname template needed), so an answer
# names the task that gave it. Pages live under the lab's state directory,
# which `lab down` removes. All traffic stays inside the lab's namespaces.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

HOSTS=(1 2 3 4)
lab_setup 4
lab_swarm 4
declare -A ADDR=()
for i in "${HOSTS[@]}"; do ADDR[$i]=$(lab addr "$i"); done
CLIENT=$(lab addr cl)
dk() { docker_on 1 "$@"; }
GRACE=(--stop-grace-period 1s)
WWW=$LAB_DIR/$LAB/www
mkdir -p "$WWW"
# A web task: its hostname in a page of its own, served on port 80.
# shellcheck disable=SC2016  # expanded by the task's shell
WEB=(--env "WWW=$WWW" sh -c
  'd=$WWW/$HOSTNAME && mkdir -p "$d" && echo "$HOSTNAME" >"$d/index.html" && exec busybox httpd -f -p 80 -h "$d"')


# --- helpers ------------------------------------------------------------------

# names SERVICE: the hostnames (task ID prefixes) of its running tasks, sorted.
names() {
  dk service ps "$1" --no-trunc --filter desired-state=running \
    --format '{{.ID}} {{.CurrentState}}' | awk '$2 == "Running" {print substr($1, 1, 12)}' | sort
}
# task_of SERVICE NAME: the full ID of its running task with hostname NAME.
task_of() {
  dk service ps "$1" --no-trunc --filter desired-state=running --format '{{.ID}}' |
    grep "^$2" | head -n 1 | grep .
}
task_pid() { dk inspect --type task "$1" --format '{{.Status.ContainerStatus.PID}}' | grep -v '^0$'; }
task_state() { dk inspect --type task "$1" --format '{{.Status.State}}'; }
not_running() { local s; s=$(task_state "$1") && echo "$s" && [[ $s != running ]]; }

# page I PORT: one HTTP request from the client to host I's PORT.
page() { lab exec cl curl -sf --max-time 3 "http://${ADDR[$1]}:$2/"; }

# answers I PORT N: N requests from the client to host I's PORT, a connection
# each; prints the answers, one a line; stops at the first that gets none.
answers() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  lab exec cl bash -c 'for ((k = 0; k < $2; k++)); do
      curl -sf --max-time 3 "$1" || { echo "(request $((k + 1)) of $2 got no answer)"; exit 1; }
    done' _ "http://${ADDR[$1]}:$2/" "$3"
}

# spreads I PORT SERVICE: 20 requests through host I's PORT all answer, and
# their answers are exactly the hostnames of SERVICE's running tasks (2 or more).
spreads() {
  local want got
  want=$(names "$3") || return 1
  got=$(answers "$1" "$2" 20) || { echo "$got"; return 1; }
  echo "running: $(paste -sd ' ' <<<"$want"); answers:"
  sort <<<"$got" | uniq -c
  (($(grep -c . <<<"$want") >= 2)) && [[ $(sort -u <<<"$got") == "$want" ]]
}

# only_live I PORT NAME: 20 requests through host I's PORT all answer, none from NAME.
only_live() {
  local got
  got=$(answers "$1" "$2" 20) || { echo "$got"; return 1; }
  sort <<<"$got" | uniq -c
  ! grep -qxF "$3" <<<"$got"
}

# refused I PORT: a TCP connection from the client to host I's PORT is refused
# (curl's exit status 7).
refused() {
  local rc=0
  lab exec cl curl -s -o /dev/null --max-time 3 "http://${ADDR[$1]}:$2/" || rc=$?
  echo "curl exit status $rc"
  ((rc == 7))
}

# udp_echo I PORT TOKEN: one datagram from the client to host I's PORT; prints the reply.
udp_echo() { lab exec cl timeout 10 socat -T 3 - "UDP:${ADDR[$1]}:$2" <<<"$3"; }

# send_tcp I PORT TEXT: one connection from the client to host I's PORT that
# sends TEXT and closes.
send_tcp() {
  # shellcheck disable=SC2016  # expanded by the inner bash
  lab exec cl timeout 10 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf %s "$2" >&3' \
    "${ADDR[$1]}" "$2" "$3"
}

hex() { printf %s "$1" | od -An -tx1 -v | tr -d ' \n'; }

# A backend that logs, per connection, every byte it received as one line of hex.
# shellcheck disable=SC2016  # expanded by the task's shell
RECORDER=(sh -c 'while :; do busybox nc -l -p 7000 | od -An -tx1 -v | tr -d " \n"; echo; done')

# proxied SERVICE TOKEN: SERVICE's log has a connection that began with a PROXY
# protocol v2 header (signature, version 2 PROXY command, TCP over IPv4) whose
# source is the client's address, and went on with TOKEN.
PP_SIG=0d0a0d0a000d0a515549540a
proxied() {
  local logs line len want_src want_tok
  logs=$(dk service logs --raw "$1") || return 1
  # shellcheck disable=SC2046  # one word per octet
  want_src=$(printf '%02x' $(tr . ' ' <<<"$CLIENT"))
  want_tok=$(hex "$2")
  while read -r line; do
    [[ $line == "$PP_SIG"* && ${#line} -ge 32 ]] || continue
    len=$((16#${line:28:4}))
    if [[ ${line:24:4} == 2111 && ${line:32:8} == "$want_src" &&
      ${line:32+2*len} == "$want_tok" ]]; then
      echo "header: ${line:0:32+2*len}"
      return 0
    fi
  done <<<"$logs"
  echo "no connection from $CLIENT ($want_src) with a v2 header and then $want_tok; the log:"
  echo "$logs"
  return 1
}

# sent_then CHECK PORT SERVICE TOKEN: a connection to h1's PORT that sends
# TOKEN, then CHECK SERVICE TOKEN (the log may lag a little).
sent_then() {
  send_tcp 1 "$2" "$4" || return 1
  sleep 0.5
  "$1" "$3" "$4"
}

# raw_log SERVICE TOKEN: SERVICE's log has a connection that brought TOKEN and nothing else.
raw_log() {
  local logs
  logs=$(dk service logs --raw "$1") || return 1
  echo "$logs"
  grep -qxF "$(hex "$2")" <<<"$logs"
}

# --- a published port answers on every node, from every task -------------------

for i in 2 3; do require check "node label web=yes on h$i" dk node update --label-add web=yes "h$i"; done
require check "service web: 2 replicas on h2 and h3, published 8080:80" dk service create -d \
  --name web --replicas 2 --constraint node.labels.web==yes --replicas-max-per-node 1 \
  --publish published=8080,target=80 "${GRACE[@]}" "${WEB[@]}"
two_running() { [[ $(names web | grep -c .) == 2 ]]; }
WAIT=60 require eventually check "web has 2 running tasks" two_running
placed() { dk service ps web --filter desired-state=running --format '{{.Node}}' | sort | paste -sd ' '; }
check_match "they run on h2 and h3" '^h2 h3$' placed

# The first node is given time for the tasks' routes to reach the nodes; the
# others should not need as long.
for i in "${HOSTS[@]}"; do
  WAIT=$((i == 1 ? 40 : 20)) eventually check_match "h$i:8080 answers the client with a task's name" \
    '^[0-9a-z]{12}$' page "$i" 8080
done
for i in "${HOSTS[@]}"; do
  check "h$i:8080 spreads 20 connections over both tasks" spreads "$i" 8080 web
done

check_output "service inspect: Endpoint.Ports has 8080 -> 80 through the mesh" \
  "tcp 80 8080 ingress" \
  dk service inspect web --format '{{range .Endpoint.Ports}}{{.Protocol}} {{.TargetPort}} {{.PublishedPort}} {{.PublishMode}};{{end}}'
INGRESS_ID=$(dk network inspect ingress --format '{{.ID}}') || INGRESS_ID=unknown
check_output "service inspect: a virtual IP on ingress (10.0.0.0/24)" "$INGRESS_ID 10.0.0." \
  dk service inspect web --format '{{range .Endpoint.VirtualIPs}}{{.NetworkID}} {{.Addr}};{{end}}'
WEB_TASK=$(names web | head -n 1) || WEB_TASK=''
WEB_TASK=$(task_of web "$WEB_TASK") || WEB_TASK=none
check_output "a web task has an address on ingress" "ingress=10.0.0." \
  dk inspect --type task "$WEB_TASK" \
  --format '{{range .NetworksAttachments}}{{.Network.Spec.Name}}={{range .Addresses}}{{.}}{{end}};{{end}}'

check_fails "a second service asking for 8080 is refused" "is already in use" \
  dk service create -d --name web2 --publish published=8080,target=80 "${GRACE[@]}" "${WEB[@]}"

# --- a port without a number gets one from 30000-32767 ---------------------------

require check "service auto: published with no number" dk service create -d --name auto \
  --publish target=80 "${GRACE[@]}" "${WEB[@]}"
auto_port() {
  local p
  p=$(dk service inspect auto --format '{{range .Endpoint.Ports}}{{.PublishedPort}}{{end}}') &&
    echo "$p" && ((p >= 30000 && p <= 32767))
}
eventually check "auto's published port is in 30000-32767" auto_port
AUTO_PORT=$(auto_port) || AUTO_PORT=0
auto_answers() { local want; want=$(names auto) && [[ -n $want ]] && page "$1" "$AUTO_PORT" | grep -qxF "$want"; }
for i in "${HOSTS[@]}"; do
  WAIT=$((i == 1 ? 40 : 20)) eventually check "h$i:$AUTO_PORT answers from auto's task" \
    auto_answers "$i"
done

# --- UDP --------------------------------------------------------------------------

require check "service echo: socat UDP echo, published 5353/udp" dk service create -d \
  --name echo --publish published=5353,target=5353,protocol=udp "${GRACE[@]}" \
  socat UDP-RECVFROM:5353,fork EXEC:cat
for i in "${HOSTS[@]}"; do
  WAIT=$((i == 1 ? 40 : 20)) eventually check_output "h$i:5353/udp echoes a datagram through the mesh" \
    "mesh-udp-h$i-$$" udp_echo "$i" 5353 "mesh-udp-h$i-$$"
done

# --- PROXY protocol v2, opt in ------------------------------------------------------

require check "service pp: label com.shoal.mesh.proxy-protocol=v2, published 8082:7000" \
  dk service create -d --name pp --label com.shoal.mesh.proxy-protocol=v2 \
  --publish published=8082,target=7000 "${GRACE[@]}" "${RECORDER[@]}"
require check "service raw: the same backend without the label, published 8083:7000" \
  dk service create -d --name raw --publish published=8083,target=7000 "${GRACE[@]}" \
  "${RECORDER[@]}"
# Each try sends once more (the first may come before the backend listens).
WAIT=40 eventually check "through h1:8082, pp's backend gets a PROXY v2 header with the client's address $CLIENT, then the data" \
  sent_then proxied 8082 pp "pp-token-$$"
WAIT=40 eventually check "through h1:8083, raw's backend gets the data alone (no header without the label)" \
  sent_then raw_log 8083 raw "raw-token-$$"

# --- host mode: only the node running the task ----------------------------------------

require check "service hostmode: 8081 in host mode, pinned to h4" dk service create -d \
  --name hostmode --constraint node.hostname==h4 \
  --publish published=8081,target=80,mode=host "${GRACE[@]}" "${WEB[@]}"
hostmode_answers() { local want; want=$(names hostmode) && [[ -n $want ]] && page 4 8081 | grep -qxF "$want"; }
WAIT=40 eventually check "h4:8081 answers from hostmode's task" hostmode_answers
for i in 1 2 3; do check "h$i:8081 refuses (no task of hostmode there)" refused "$i" 8081; done

# --- a killed task gets no new connection ----------------------------------------------

KILLED=$(names web | head -n 1) || KILLED=''
KILLED_TASK=$(task_of web "$KILLED") || KILLED_TASK=none
KILLED_PID=$(task_pid "$KILLED_TASK") || KILLED_PID=0
check_output "web task $KILLED runs busybox httpd as pid $KILLED_PID" "httpd" \
  ps -o args= -p "$KILLED_PID"
require check "kill -9 web task $KILLED's process" kill -KILL "$KILLED_PID"
eventually check "the store has task $KILLED no longer running" not_running "$KILLED_TASK"
# Once the nodes' tables drop the task (the retries cover that interval, not a
# time asserted), every connection answers, from the other task or from the
# replacement: a mesh that kept the dead task would fail about half of them.
for i in "${HOSTS[@]}"; do
  eventually check "through h$i: 20 connections all answer, none from the killed task" \
    only_live "$i" 8080 "$KILLED"
done
WAIT=40 eventually check "the replacement runs and both tasks answer through h1 again" \
  spreads 1 8080 web
check "and through h4" spreads 4 8080 web

# --- service rm closes the port everywhere -----------------------------------------------

require check "service rm web" dk service rm web
for i in "${HOSTS[@]}"; do
  eventually check "h$i:8080 refuses connections after service rm" refused "$i" 8080
done
require check "service rm auto pp raw echo hostmode" dk service rm auto pp raw echo hostmode
closed() { refused "$1" "$AUTO_PORT" && refused "$1" 8082 && refused "$1" 8083; }
for i in "${HOSTS[@]}"; do
  eventually check "h$i:$AUTO_PORT, :8082 and :8083 refuse connections too" closed "$i"
done
eventually check "h4:8081 (host mode) refuses connections" refused 4 8081
