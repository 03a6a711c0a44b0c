#!/usr/bin/env bash
# The userspace VXLAN overlay, driven by the stock docker CLI on three hosts
# (h1 manager, h2 and h3 workers): overlay networks are created, listed,
# inspected and refused where docker refuses them; tasks on different hosts
# get addresses on their network, ping each other and move 100 MB over TCP
# with matching SHA-256; tasks on different networks cannot reach each other;
# a stopped task's address stops answering; a node that leaves takes its
# endpoints out of the other nodes' tables; removing the services lets the
# networks go.
#
# The test enters a task's network namespace from its lab host with nsenter
# (the lab shares the machine's PID namespace, so a task's PID from `docker
# inspect` is valid here): all traffic stays inside the lab's namespaces.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

lab_setup 3
for i in 1 2 3; do require check "daemon starts in h$i" lab start "$i"; done
ADDR1=$(lab addr 1)
dk() { docker_on 1 "$@"; }
GRACE=(--stop-grace-period 1s)

require check "swarm init on h1" dk swarm init --advertise-addr "$ADDR1"
TOKEN=$(dk swarm join-token -q worker)
for i in 2 3; do
  require check "h$i joins" docker_on "$i" swarm join --token "$TOKEN" "$ADDR1:2377"
done

# --- networks ---------------------------------------------------------------

check_output "the ingress network exists from swarm init" "ingress" \
  dk network ls --format '{{.Name}} {{.Driver}} {{.Scope}}'
require check "network create net-a" dk network create -d overlay net-a
require check "network create net-b with a subnet" \
  dk network create -d overlay --subnet 10.77.0.0/24 net-b
check_output "network ls shows net-a as a swarm overlay" "net-a overlay swarm" \
  dk network ls --format '{{.Name}} {{.Driver}} {{.Scope}}'
check_output "net-b has the subnet asked for" '"Subnet":"10.77.0.0/24"' \
  dk network inspect net-b --format '{{json .IPAM.Config}}'
check_match "net-a has a VXLAN ID from 4096 up" '^4[0-9]{3}$' \
  dk network inspect net-a --format '{{index .Options "com.docker.network.driver.overlay.vxlanid_list"}}'
check_fails "a second net-a is refused" "already exists" dk network create -d overlay net-a
check_fails "an unknown network cannot be removed" "not found" dk network rm no-such-net

# --- tasks on the overlay ---------------------------------------------------

# The server counts and hashes what one connection brings, then listens again.
SERVER='while :; do busybox nc -l -p 7000 | sha256sum; done'
require check "service srv on net-a, pinned to h2" dk service create -d --name srv \
  --network net-a --constraint node.hostname==h2 "${GRACE[@]}" sh -c "$SERVER"
require check "service cli on net-a, pinned to h1" dk service create -d --name cli \
  --network net-a --constraint node.hostname==h1 "${GRACE[@]}" sleep 100000
require check "service other on net-b, pinned to h1" dk service create -d --name other \
  --network net-b --constraint node.hostname==h1 "${GRACE[@]}" sleep 100001
require check "service far on net-a, pinned to h3" dk service create -d --name far \
  --network net-a --constraint node.hostname==h3 "${GRACE[@]}" sleep 100002

# running_task SERVICE: the ID of its running task.
running_task() {
  dk service ps "$1" --no-trunc --filter desired-state=running \
    --format '{{.ID}} {{.CurrentState}}' | awk '$2 == "Running" {print $1; exit}' | grep .
}
# task_addr TASK: its overlay address, without the prefix length.
task_addr() {
  dk inspect --type task "$1" --format '{{range .NetworksAttachments}}{{range .Addresses}}{{.}}{{end}}{{end}}' |
    cut -d/ -f1 | grep .
}
task_pid() { dk inspect --type task "$1" --format '{{.Status.ContainerStatus.PID}}' | grep -v '^0$'; }

for s in srv cli other far; do require eventually check "$s runs" running_task "$s"; done
SRV=$(running_task srv) CLI=$(running_task cli) OTHER=$(running_task other) FAR=$(running_task far)
SRV_ADDR=$(task_addr "$SRV") CLI_ADDR=$(task_addr "$CLI") OTHER_ADDR=$(task_addr "$OTHER")
FAR_ADDR=$(task_addr "$FAR")
CLI_PID=$(task_pid "$CLI") OTHER_PID=$(task_pid "$OTHER")
echo "# srv $SRV_ADDR on h2, cli $CLI_ADDR and other $OTHER_ADDR on h1, far $FAR_ADDR on h3"

check_match "tasks on net-a have addresses in its subnet, not the gateway" \
  '^10\.[0-9]+\.[0-9]+\.([2-9]|[1-9][0-9]+) 10\.[0-9]+\.[0-9]+\.([2-9]|[1-9][0-9]+)$' \
  echo "$SRV_ADDR $CLI_ADDR"
check_output "the task on net-b has an address in net-b's subnet" "10.77.0." echo "$OTHER_ADDR"

# in_task I PID CMD...: run CMD on host I inside that task's network namespace.
in_task() { lab exec "$1" nsenter --target "$2" --net "${@:3}"; }

check_output "the task sees its address on eth0" "$CLI_ADDR/" \
  in_task 1 "$CLI_PID" ip -o -4 addr show dev eth0
IFS=. read -r -a OCTETS <<<"$CLI_ADDR"
check_output "its MAC derives from the address" \
  "$(printf '02:42:%02x:%02x:%02x:%02x' "${OCTETS[@]}")" \
  in_task 1 "$CLI_PID" ip -o link show dev eth0
check_output "its MTU is 1450" "mtu 1450" in_task 1 "$CLI_PID" ip -o link show dev eth0
check_output "its default route is via the network's gateway" "default via" \
  in_task 1 "$CLI_PID" ip -4 route show
eventually check "h1's task pings h2's task across the overlay" \
  in_task 1 "$CLI_PID" busybox ping -c 3 -W 2 "$SRV_ADDR"
check "and h3's task" in_task 1 "$CLI_PID" busybox ping -c 1 -W 2 "$FAR_ADDR"

# 100 MB over one TCP connection; the server's log shows what it received.
DATA=$(mktemp)
head -c 100000000 /dev/urandom >"$DATA"
SUM=$(sha256sum <"$DATA" | cut -d' ' -f1)
send() {
  in_task 1 "$CLI_PID" python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], 7000), timeout=30)
with open(sys.argv[2], "rb") as f:
    s.sendfile(f)
s.shutdown(socket.SHUT_WR)
s.recv(1)
' "$SRV_ADDR" "$DATA"
}
check "100 MB sent from h1's task to h2's task" send
eventually check_output "the server received every byte (SHA-256 matches)" "$SUM" \
  dk service logs --raw srv
rm -f "$DATA"

# --- isolation ----------------------------------------------------------------

# (Entering the net-b task works, so a failed ping below is the network's doing.)
check "the task on net-b answers itself" in_task 1 "$OTHER_PID" busybox ping -c 1 -W 1 "$OTHER_ADDR"
check_fails "a task on net-b cannot reach a task on net-a" "" \
  in_task 1 "$OTHER_PID" busybox ping -c 2 -W 1 "$SRV_ADDR"
check_fails "nor the other way" "" in_task 1 "$CLI_PID" busybox ping -c 2 -W 1 "$OTHER_ADDR"
check_fails "net-a cannot be removed while a service uses it" "in use" dk network rm net-a

# --- endpoints come and go ------------------------------------------------------

# A restarted daemon adopts its task and opens a new TAP on the bridge the task
# is still plugged into.
require check "h2's daemon stops" lab stop 2
require check "h2's daemon starts again" lab start 2
eventually check "h2's task answers again after its daemon restarted" \
  in_task 1 "$CLI_PID" busybox ping -c 1 -W 1 "$SRV_ADDR"
check_output "and it is still the same task" "$SRV" running_task srv

# counted I NETWORK: host I's data plane sent and received packets on NETWORK
# (the Counters a shoal manager adds to the network's inspect JSON).
counted() {
  curl -sf --max-time 10 --unix-socket "$(lab sock "$1")" "http://localhost/networks/$2" |
    jq -e '.Counters | select(.tx_packets > 0 and .rx_packets > 0)'
}
check "h1's counters show the traffic on net-a" counted 1 net-a
require check "service srv scaled to 0" dk service scale -d srv=0
eventually check_fails "the stopped task's address stops answering" "" \
  in_task 1 "$CLI_PID" busybox ping -c 1 -W 1 "$SRV_ADDR"

# peers NETWORK I: the nodes host I's data plane has endpoints of on NETWORK.
peers() { docker_on "$2" network inspect "$1" --format '{{range .Peers}}{{.IP}} {{end}}'; }
lacks_peer() { local p; p=$(peers "$1" "$2") && [[ $p != *"$3"* ]]; }
require check "service srv back at 1" dk service scale -d srv=1
eventually check_output "h1 knows h2's and h3's endpoints on net-a" \
  "$(lab addr 2) $(lab addr 3)" peers net-a 1
require check "h3 leaves the swarm" docker_on 3 swarm leave --force
eventually check "h3's endpoints leave h1's table" lacks_peer net-a 1 "$(lab addr 3)"

# --- clean-up -------------------------------------------------------------------

require check "services removed" dk service rm srv cli other far
eventually check "net-a can be removed once unused" dk network rm net-a
check "net-b too" dk network rm net-b
check_fails "net-a is gone" "not found" dk network inspect net-a
