#!/bin/sh
# TCP (iperf3, 10 s, STREAMS streams, 1 by default) between two tasks on two hosts, over
# shoal's userspace overlay and, in the same run, over kernel VXLAN, with the ratio. Everything
# lives in namespaces named shoalx-*, deleted at the end: hosts h1 and h2 joined by a veth
# underlay (MTU 1500), a bridge per host, a task namespace per host on the bridge (MTU 1450).
# QUEUES: engine threads (TAP queues), 0 = one per core. Needs root.
set -eu
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/examples/overlay_node}
QUEUES=${QUEUES:-0}
NS="shoalx-h1 shoalx-h2 shoalx-t1 shoalx-t2"
cleanup() { for ns in $NS; do ip netns del "$ns" 2>/dev/null || true; done; }
trap cleanup EXIT

setup() {
    cleanup
    for ns in $NS; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
    ip link add shxu1 netns shoalx-h1 type veth peer name shxu2 netns shoalx-h2
    ip -n shoalx-h1 addr add 192.168.77.1/24 dev shxu1
    ip -n shoalx-h2 addr add 192.168.77.2/24 dev shxu2
    for i in 1 2; do
        h=shoalx-h$i
        ip -n $h link set shxu$i up
        ip -n $h link add shb4096 type bridge
        ip -n $h link set shb4096 up
        ip link add shxe$i netns $h type veth peer name eth0 netns shoalx-t$i
        ip -n $h link set shxe$i mtu 1450 master shb4096 up
        ip -n shoalx-t$i link set eth0 mtu 1450 address 02:42:0a:00:01:0$((i + 1)) up
        ip -n shoalx-t$i addr add 10.0.1.$((i + 1))/24 dev eth0
    done
}

measure() {
    ip netns exec shoalx-t2 iperf3 -s -1 -D
    sleep 0.3
    ip netns exec shoalx-t1 iperf3 -c 10.0.1.3 -t 10 -P ${STREAMS:-1} -J | python3 -c \
        'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}

# Kernel VXLAN reference.
setup
for i in 1 2; do
    h=shoalx-h$i; peer=192.168.77.$((3 - i))
    ip -n $h link add shxv type vxlan id 4096 remote $peer local 192.168.77.$i dstport 4789
    ip -n $h link set shxv mtu 1450 master shb4096 up
done
kernel=$(measure)
echo "kernel VXLAN: $kernel Gbit/s"

# shoal's overlay.
setup
for i in 1 2; do
    node=$(printf 'a\nb' | sed -n ${i}p)
    rm -f /tmp/shoalx-h$i.in; mkfifo /tmp/shoalx-h$i.in
    ip netns exec shoalx-h$i "$BIN" $node 192.168.77.1 192.168.77.2 $QUEUES \
        < /tmp/shoalx-h$i.in > /tmp/shoalx-h$i.out &
done
# Closing these makes the nodes print their counters and exit.
exec 3>/tmp/shoalx-h1.in 4>/tmp/shoalx-h2.in
for i in 1 2; do
    until grep -q installed /tmp/shoalx-h$i.out; do sleep 0.1; done
    ip -n shoalx-h$i link set sht4096 master shb4096
done
sleep 0.5
shoal=$(measure)
echo "shoal overlay: $shoal Gbit/s (queues=$QUEUES)"
python3 -c "print('ratio shoal/kernel: %.2f' % ($shoal / $kernel))"
exec 3>&- 4>&-
wait
grep -h -v installed /tmp/shoalx-h1.out /tmp/shoalx-h2.out
