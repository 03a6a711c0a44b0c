#!/usr/bin/env bash
# Stacks and service discovery on four hosts (h1 manager, h2-h4 workers): the
# example stack examples/shop (a `db` service and two `web` replicas published
# on 8080, each page quoting what the web task fetched from db:3306 by name) is
# deployed with the stock `docker stack deploy` and then with `shoal stack
# deploy`. From the client namespace every node's 8080 returns such a page;
# inside a task the embedded DNS answers the service names, their short
# (alias) names, `tasks.<service>` with every running task and nothing for a
# task that was killed; a name outside the cluster fails cleanly; `stack rm`
# removes the services and the network; a broken file is refused with its
# line and column and deploys nothing. (tests/lab/stack_docker.sh covers the
# docker CLI's stack commands, labels and volumes on one node.)
#
# All traffic stays inside the lab's namespaces (lab hosts have no route out:
# DNS forwarding of outside names fails there at once).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

HOSTS=(1 2 3 4)
COMPOSE=$ROOT/examples/shop/docker-compose.yml
lab_setup 4
lab_swarm 4
declare -A ADDR=()
for i in "${HOSTS[@]}"; do ADDR[$i]=$(lab addr "$i"); done
dk() { docker_on 1 "$@"; }
shoal1() { shoal_cli -H "unix://$(lab sock 1)" "$@"; }

# --- helpers ------------------------------------------------------------------

# running SERVICE: the IDs of its running tasks, sorted.
running() {
  dk service ps "$1" --no-trunc --filter desired-state=running --format '{{.ID}} {{.CurrentState}}' |
    awk '$2 == "Running" {print $1}' | sort
}
running_count() { running "$1" | wc -l; }
task_field() { dk inspect --type task "$1" --format "$2"; }
# address TASK NETWORK: the task's address on NETWORK, without the prefix length.
address() {
  task_field "$1" "{{range .NetworksAttachments}}{{if eq .Network.Spec.Name \"$2\"}}{{range .Addresses}}{{.}}{{end}}{{end}}{{end}}" |
    cut -d/ -f1 | grep .
}
# host_of TASK: the lab index of the host that runs it.
host_of() {
  local host
  host=$(dk node inspect "$(task_field "$1" '{{.NodeID}}')" --format '{{.Description.Hostname}}')
  echo "${host#h}"
}
# in_task TASK CMD...: CMD in the task's network and mount namespaces (so with its
# /etc/resolv.conf), on the host that runs it.
in_task() {
  local host pid
  host=$(host_of "$1")
  pid=$(task_field "$1" '{{.Status.ContainerStatus.PID}}')
  timeout "$CMD_TIMEOUT" "$ROOT/netlab/lab.sh" exec "$host" nsenter --target "$pid" --net --mount "${@:2}"
}
# lookup TASK NAME: the IPv4 addresses the task's resolver gets for NAME, sorted.
lookup() {
  in_task "$1" busybox nslookup -type=a "$2" |
    awk '/^Name:/ {name = 1; next} name && /^Address/ {print $NF; name = 0}' | sort
}
# page I: one request from the client to host I's port 8080.
page() { lab exec cl curl -s --max-time 15 "http://${ADDR[$1]}:8080/"; }
# web_tasks_seen: how many different web tasks answered 12 requests over all nodes.
web_tasks_seen() {
  for _ in 1 2 3; do for i in "${HOSTS[@]}"; do page "$i"; done; done |
    sed -n 's/^web task: //p' | sort -u | wc -l
}
vip_of() {  # vip_of SERVICE NETWORK
  local network
  network=$(dk network inspect "$2" --format '{{.Id}}')
  dk service inspect "$1" --format '{{range .Endpoint.VirtualIPs}}{{.NetworkID}} {{.Addr}}{{println}}{{end}}' |
    awk -v n="$network" '$1 == n {print $2}' | cut -d/ -f1 | grep .
}
no_shop() {
  dk service ls --format '{{.Name}}'
  dk network ls --format '{{.Name}}' | grep shop_ || true
}

# check_stack NAME: the stack's pages, names and spread (both deploy paths).
check_stack() {
  local stack=$1 web db
  require eventually check_match "$stack: both web tasks run" '^2$' running_count "${stack}_web"
  require eventually check_match "$stack: the db task runs" '^1$' running_count "${stack}_db"
  for i in "${HOSTS[@]}"; do
    WAIT=60 eventually check_output "$stack: h$i:8080 serves a page made with db's answer" \
      "db says: row-42 from db task" page "$i"
  done
  eventually check_match "$stack: pages come from both web tasks" '^2$' web_tasks_seen
  mapfile -t web < <(running "${stack}_web")
  db=$(running "${stack}_db")
  local web_addresses db_vip
  web_addresses=$(for t in "${web[@]}"; do address "$t" "${stack}_default"; done | sort)
  db_vip=$(vip_of "${stack}_db" "${stack}_default") || db_vip=none
  check_match "$stack: tasks.${stack}_web lists both replicas" "^${web_addresses//./\\.}$" \
    lookup "${web[0]}" "tasks.${stack}_web"
  check_match "$stack: tasks.web (the short name) too" "^${web_addresses//./\\.}$" \
    lookup "$db" "tasks.web"
  check_match "$stack: ${stack}_db is its VIP" "^${db_vip//./\\.}$" lookup "${web[0]}" "${stack}_db"
  check_match "$stack: db (the short name) is its VIP" "^${db_vip//./\\.}$" lookup "${web[1]}" db
  check_fails "$stack: a name outside the cluster fails" "" \
    in_task "${web[0]}" busybox nslookup -type=a nothing.example.invalid
}

# --- deployed with the stock docker CLI ----------------------------------------

check_output "docker stack deploy creates the network" "Creating network shop_default" \
  dk stack deploy -c "$COMPOSE" shop
check_output "... and the services" "Creating service shop_web" echo "$OUT"
check_stack shop

# A killed web task leaves DNS with the update that takes it out of the data plane.
mapfile -t WEB < <(running shop_web)
victim=${WEB[0]} survivor=${WEB[1]}
victim_addr=$(address "$victim" shop_default) || victim_addr=none
survivor_addr=$(address "$survivor" shop_default) || survivor_addr=none
victim_pid=$(task_field "$victim" '{{.Status.ContainerStatus.PID}}')
check "kill -9 a web task's process" lab exec "$(host_of "$victim")" kill -9 "$victim_pid"
task_ended() { [[ $(task_field "$victim" '{{.Status.State}}') != running ]]; }
require eventually check "the killed task is reported ended" task_ended
# Its address leaves with the route update that follows that store change.
WAIT=5 eventually check_match "its address is gone from tasks.shop_web" \
  "^${survivor_addr//./\\.}$" lookup "$survivor" tasks.shop_web
if [[ $OUT == *"$victim_addr"* ]]; then
  fail "the killed task's address $victim_addr is still answered"
fi
eventually check_match "its replacement runs" '^2$' running_count shop_web
for i in "${HOSTS[@]}"; do
  check_output "h$i:8080 still serves pages" "db says: row-42" page "$i"
done

check_output "docker stack rm" "Removing network shop_default" dk stack rm shop
eventually check_match "the services and the network are gone" '^$' no_shop
eventually check_fails "8080 is closed on h1" "" page 1

# --- deployed with shoal's own client -------------------------------------------

check_output "shoal stack deploy" "Creating service shop_web" shoal1 stack deploy -c "$COMPOSE" shop
check_stack shop
check_output "shoal stack ls" "shop" shoal1 stack ls
check_output "shoal stack rm" "Removing service shop_web" shoal1 stack rm shop
eventually check_match "the services and the network are gone" '^$' no_shop

# --- a file that fails leaves nothing behind -------------------------------------

BROKEN=$LAB_DIR/$LAB/broken.yml
printf 'services:\n  web:\n    image: busybox\n   command: [x]\n' >"$BROKEN"
check_fails "invalid YAML: its line and column" "line 4" shoal1 stack deploy -c "$BROKEN" bad
check_fails "... refused by docker's CLI too" "" dk stack deploy -c "$BROKEN" bad
printf 'services:\n  ok:\n    image: busybox\n  web:\n    image: busybox\n    mem_limit: 1g\n' >"$BROKEN"
check_fails "a refused option" "mem_limit" shoal1 stack deploy -c "$BROKEN" bad
nothing_of_bad() {
  dk service ls --format '{{.Name}}' | grep bad_ || true
  dk network ls --format '{{.Name}}' | grep bad_ || true
}
check_match "no service or network of the broken stack" '^$' nothing_of_bad
