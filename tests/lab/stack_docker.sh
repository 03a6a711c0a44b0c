#!/usr/bin/env bash
# `docker stack deploy|ls|services|ps|rm` with the stock docker CLI against one
# shoal host on the process executor: the stack's network and services carry
# the com.docker.stack.namespace label; a named volume is a directory of the
# node's data dir that outlives tasks and redeploys; a read-only bind mount is
# read-only; a task on the stack's network names the network's gateway (the
# embedded DNS) in its /etc/resolv.conf; a redeploy updates, --prune removes a
# service the file dropped; `stack rm` removes services and the network; secrets
# and configs list empty; `volume ls|inspect|rm` show and remove the volume, not
# while a task mounts it; the shop example answers through the mesh with a row
# its web task fetched from db by name.
#
# Mount points and bind sources live under the lab's state directory (the
# process executor's tasks see the host's tree), which `lab down` removes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

lab_setup 1
require check "daemon starts in h1" lab start 1
dk() { docker_on 1 "$@"; }
require check "swarm init" dk swarm init --advertise-addr "$(lab addr 1)"

STATE=$LAB_DIR/$LAB
MNT=$STATE/mnt
mkdir -p "$STATE/shared" "$MNT"
echo "from the host" >"$STATE/shared/marker"
VOLUMES=$STATE/h1/data/volumes

# compose_file WEB_REPLICAS [with-db]: the stack's file on stdout.
compose_file() {
  cat <<EOF
version: "3.8"
services:
  web:
    image: sh
    command: ["-c", "cat /etc/resolv.conf; exec sleep 1000"]
    ports: ["8080:80"]
    labels: [tier=front]
    stop_grace_period: 1s
    deploy:
      replicas: $1
EOF
  [[ ${2:-} == with-db ]] && cat <<EOF
  db:
    image: sh
    command:
      - -c
      - >-
        echo boot >>$MNT/db/boots; echo "boots \$\$(wc -l <$MNT/db/boots)";
        cat $MNT/shared/marker; touch $MNT/shared/x 2>/dev/null || echo read-only;
        exec sleep 1000
    volumes:
      - dbdata:$MNT/db
      - $STATE/shared:$MNT/shared:ro
    stop_grace_period: 1s
EOF
  cat <<EOF
volumes:
  dbdata:
EOF
}
compose_file 2 with-db >"$STATE/stack.yml"
compose_file 1 >"$STATE/stack-web-only.yml"

# 1. Deploy.
require check_output "stack deploy creates the network and both services" \
  "Creating service demo_db" dk stack deploy -c "$STATE/stack.yml" demo
check_match "stack ls: demo with 2 services" 'demo[[:space:]]+2' dk stack ls
check_output "the network carries the stack label" '{"com.docker.stack.namespace":"demo"}' \
  dk network inspect demo_default --format '{{json .Labels}}'
spec_labels() { dk service inspect demo_web --format '{{json .Spec.Labels}}'; }
check_match "the service carries the stack label and its own" \
  '"com.docker.stack.namespace":"demo".*|"tier":"front"' spec_labels
check_output "so does its container spec" '"com.docker.stack.namespace":"demo"' \
  dk service inspect demo_web --format '{{json .Spec.TaskTemplate.ContainerSpec.Labels}}'
check_output "the volume mount is stored as sent" '"Type":"volume","Source":"demo_dbdata"' \
  dk service inspect demo_db --format '{{json .Spec.TaskTemplate.ContainerSpec.Mounts}}'
eventually check_match "stack services: 2/2 web, 1/1 db" \
  'demo_db[[:space:]]+replicated[[:space:]]+1/1.*demo_web[[:space:]]+replicated[[:space:]]+2/2' \
  dk stack services demo
running_tasks() {  # "name state" of the stack's tasks wanted running, one line each
  dk stack ps demo --filter desired-state=running --format '{{.Name}} {{.CurrentState}}' |
    cut -d' ' -f1,2 | sort | paste -sd' ' -
}
eventually check_match "stack ps: the stack's three tasks running" \
  '^demo_db\.1 Running demo_web\.1 Running demo_web\.2 Running$' running_tasks

# 2. Mounts and resolv.conf, seen from the tasks.
GATEWAY=$(dk network inspect demo_default --format '{{(index .IPAM.Config 0).Gateway}}') || GATEWAY=none
eventually check_output "a web task asks the gateway of demo_default (not ingress) for names" \
  "nameserver $GATEWAY"$'\n'"options ndots:0" dk service logs --raw demo_web
eventually check_output "db wrote its first boot into the volume" "boots 1" dk service logs --raw demo_db
check_output "db reads the bind mount" "from the host" dk service logs --raw demo_db
check_output "the bind mount is read-only" "read-only" dk service logs --raw demo_db
check "the volume is a directory of the node's data dir" test -s "$VOLUMES/demo_dbdata/boots"
check "the mount point holds nothing on the host" test ! -e "$MNT/db/boots"
check_match "volume ls shows the stack's volume" '^local[[:space:]]+demo_dbdata$' \
  dk volume ls --format '{{.Driver}} {{.Name}}'
check_output "volume inspect: its directory" "\"Mountpoint\": \"$VOLUMES/demo_dbdata\"" \
  dk volume inspect demo_dbdata
check_fails "a volume a task mounts cannot be removed" "remove demo_dbdata: volume is in use" \
  dk volume rm demo_dbdata

# 3. Redeploy: an update; the volume outlives the task it replaces.
check_output "a redeploy updates the services" "Updating service demo_db" \
  dk stack deploy -c "$STATE/stack.yml" demo
check "a forced update replaces the db task" dk service update --force -d demo_db
eventually check_output "the new db task finds the first one's boot in the volume" "boots 2" \
  dk service logs --raw demo_db

# 4. --prune removes what the file dropped.
check_output "deploy --prune removes the db service" "Removing service demo_db" \
  dk stack deploy --prune -c "$STATE/stack-web-only.yml" demo
check_match "stack services: web only" '^demo_web$' dk stack services demo --format '{{.Name}}'
check "the volume stays after its service is gone" test -s "$VOLUMES/demo_dbdata/boots"

# 5. Secrets and configs: none, with docker's errors.
check_match "secret ls is empty" '^$' dk secret ls -q
check_match "config ls is empty" '^$' dk config ls -q
check_fails "a bad secret filter is refused" "invalid filter 'driver'" dk secret ls -f driver=x
check_fails "secret inspect: not found" "secret nope not found" dk secret inspect nope

# 6. stack rm.
check_output "stack rm removes the services and the network" "Removing network demo_default" \
  dk stack rm demo
check_match "stack ls is empty" '^NAME[[:space:]]+SERVICES$' dk stack ls
eventually check_match "no demo network is left" '^ingress$' dk network ls --format '{{.Name}}'
check_fails "stack ps of a removed stack" "nothing found in stack: demo" dk stack ps demo
eventually check_output "once no task mounts it, the volume can be removed" demo_dbdata \
  dk volume rm demo_dbdata
check "its directory is gone" test ! -e "$VOLUMES/demo_dbdata"

# 7. The shop example with the stock CLI: a web task reaches db by name through the embedded
#    DNS that its resolv.conf names, and answers through the mesh on 8080.
SHOP=$ROOT/examples/shop/docker-compose.yml
require check_output "stack deploy examples/shop" "Creating service shop_web" \
  dk stack deploy -c "$SHOP" shop
page() { lab exec cl curl -s --max-time 20 "http://$(lab addr 1):8080/"; }
WAIT=60 eventually check_output "8080 answers with a row db gave web by name" \
  "db says: row-42 from db task" page
check_output "stack rm shop" "Removing network shop_default" dk stack rm shop
