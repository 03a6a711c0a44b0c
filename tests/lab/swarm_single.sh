#!/usr/bin/env bash
# One shoal host driven by the stock docker CLI: swarm init, nodes, join
# tokens, API errors, crash recovery, the shoal client, leaving the swarm.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

lab_setup 1
require check "daemon starts in h1" lab start 1
SOCK=$(lab sock 1)
ADDR=$(lab addr 1)
dk() { docker_on 1 "$@"; }
# "ID hostname status availability manager-status", one line per node
node_rows() {
  dk node ls --format '{{.ID}} {{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}'
}
self_id_json() { dk node inspect self | jq -er '.[0].ID'; }
ca_part() { cut -d- -f3 <<<"$1"; }   # SWMTKN-1-<CA digest>-<secret>
ping_sock() { curl -sf --max-time 5 --unix-socket "$SOCK" http://localhost/_ping; }
SWARM_ACTIVE='[Ss]warm[^a-zA-Z]*active'   # "Swarm: active", not "inactive"

# 1. The engine answers; no swarm yet.
check "docker version" dk version
check_output "docker info: Swarm: inactive before init" "Swarm: inactive" dk info

# 2. swarm init
require check_output "docker swarm init --advertise-addr $ADDR" "Swarm initialized" \
  dk swarm init --advertise-addr "$ADDR"
check_output "docker info: Swarm: active" "Swarm: active" dk info
check_output "docker info: Is Manager: true" "Is Manager: true" dk info

# 3. One node: h1, Ready, Active, Leader; inspect self agrees.
eventually check_match "node ls: one node, h1 Ready Active Leader" \
  '^[0-9a-z]{25} h1 Ready Active Leader$' node_rows
check_match "node ls (table) marks self and shows h1 Ready Active Leader" \
  '\*[[:space:]]+h1[[:space:]]+Ready[[:space:]]+Active[[:space:]]+Leader' dk node ls
NODE_ID=$(node_rows | cut -d' ' -f1) || NODE_ID=none
check_match "node ID is 25 lowercase base-36 chars" '^[0-9a-z]{25}$' echo "$NODE_ID"
check_match "node inspect self: JSON with the same ID" "^$NODE_ID\$" self_id_json

# 4. Join tokens.
check_match "join-token worker prints the join command for $ADDR:2377" \
  "docker swarm join --token SWMTKN-1-[0-9a-z]+-[0-9a-z]+ ${ADDR//./\\.}:2377" \
  dk swarm join-token worker
TOKEN_RE='^SWMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$'
check_match "join-token -q worker: token format" "$TOKEN_RE" dk swarm join-token -q worker
check_match "join-token -q manager: token format" "$TOKEN_RE" dk swarm join-token -q manager
WORKER_TOKEN=$(dk swarm join-token -q worker) || WORKER_TOKEN=none
MANAGER_TOKEN=$(dk swarm join-token -q manager) || MANAGER_TOKEN=none
check "worker and manager tokens differ" test "$WORKER_TOKEN" != "$MANAGER_TOKEN"
check "worker and manager tokens share the CA digest" \
  test "$(ca_part "$WORKER_TOKEN")" = "$(ca_part "$MANAGER_TOKEN")"

# 5. A second init is refused.
check_fails "second swarm init: already part of a swarm" "already part of a swarm" \
  dk swarm init --advertise-addr "$ADDR"

# 6. Bad requests get JSON errors and do not hurt the daemon.
check_match "GET /v1.41/nonexistent: 404 with a JSON message" '^HTTP 404 message: .+' \
  api 1 GET /v1.41/nonexistent
check_match "POST /v1.41/swarm/init, malformed JSON: 400 with a JSON message" \
  '^HTTP 400 message: .+' api 1 POST /v1.41/swarm/init '{"ListenAddr": "0.0.0.0:2377",'
check_output "daemon still answers _ping" "OK" ping_sock

# 7. Crash (SIGKILL) and restart on the same data dir: same node, same tokens.
check "kill -9 the daemon" lab kill 1
require check "restart it on the same data dir" lab start 1
eventually check_match "node ls after restart: same ID, Ready, Leader" \
  "^$NODE_ID h1 Ready Active Leader\$" node_rows
check_match "worker join token unchanged" "^$WORKER_TOKEN\$" dk swarm join-token -q worker

# 8. The shoal client.
shoal_info_env() { SHOAL_HOST="unix://$SOCK" shoal_cli info; }
check_match "shoal node ls lists h1 with its ID" "$NODE_ID.*h1" shoal_cli -H "unix://$SOCK" node ls
check_match "shoal info (SHOAL_HOST) shows Swarm active" "$SWARM_ACTIVE" shoal_info_env

# 9. Leaving: refused without --force on a manager, done with it, and it sticks.
check_fails "swarm leave without --force is refused" "--force" dk swarm leave
check "swarm leave --force" dk swarm leave --force
check_output "docker info: Swarm: inactive after leave" "Swarm: inactive" dk info
check "stop the daemon" lab stop 1
require check "start it again" lab start 1
check_output "still Swarm: inactive after restart" "Swarm: inactive" dk info
