#!/usr/bin/env bash
# Restores ENTRIES state entries from a changelog into an empty state directory and reports
# how long it took. The changelog is written the way a replica writes it (one key per stream,
# a checkpoint marker at the end of each partition), spread over PARTITIONS partitions because
# the mock cluster keeps only about 5 MB per partition. RunningSum restores every partition in
# its rebalance callback, then the script reads the time each restore logged.
#
#   Benchmarks/state-restore.sh [ENTRIES=1000000] [PARTITIONS=50]
#
# Needs the Python of .venv-q3 (confluent_kafka) to write the changelog quickly: PY=... to
# use another one.
set -euo pipefail
entries=${1:-1000000}
partitions=${2:-50}
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PY:-$root/.venv-q3/bin/python}
cd "$root"
swift build -c release --product quixd >/dev/null
swift build -c release --product RunningSum >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"' EXIT
group=restore-bench

"$bin/quixd" broker --partitions "$partitions" --topic in --topic out --topic "$group-in-changelog" >"$work/broker.log" 2>&1 &
for _ in $(seq 100); do [ -s "$work/broker.log" ] && break; sleep 0.1; done
bootstrap=$(head -n1 "$work/broker.log")

"$py" - "$bootstrap" "$group-in-changelog" "$entries" "$partitions" <<'EOF'
import struct, sys, time
from confluent_kafka import Producer
bootstrap, topic, entries, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 1000000})
store = b"default"
started = time.monotonic()
for i in range(entries):
    stream = b"s%d" % i
    key = struct.pack(">H", len(store)) + store + struct.pack(">H", len(stream)) + stream + b"gForceX_sum"
    value = b"\x01" + struct.pack("<d", float(i))
    while True:
        try:
            producer.produce(topic, key=key, value=value, partition=i % partitions)
            break
        except BufferError:
            producer.poll(0.05)
for partition in range(partitions):  # checkpoint markers: the input starts at offset 0
    while True:
        try:
            producer.produce(topic, key=b"\xff\xffcheckpoint", value=struct.pack(">q", 0), partition=partition)
            break
        except BufferError:
            producer.poll(0.05)
producer.flush()
print(f"wrote {entries} changelog entries over {partitions} partitions in {time.monotonic() - started:.1f} s", file=sys.stderr)
EOF

started=$(date +%s.%N)
"$bin/RunningSum" --brokers "$bootstrap" --input in --output out --group "$group" --state-dir "$work/state" \
    --kafka session.timeout.ms=6000 >"$work/run.log" 2>&1 &
for _ in $(seq 1200); do
    [ "$(grep -c "state restored from the changelog" "$work/run.log" || true)" -ge "$partitions" ] && break
    sleep 0.5
done
ended=$(date +%s.%N)
restored=$(grep "state restored from the changelog" "$work/run.log" | grep -o 'applied=[0-9]*' | cut -d= -f2 | paste -sd+ | bc)
# The partitions restore side by side; each logs the time since the restore began.
seconds=$(grep "state restored from the changelog" "$work/run.log" | grep -o 'seconds=[0-9.]*' | cut -d= -f2 | sort -g | tail -n1)
echo "restored $restored entries in $seconds s ($(echo "$ended - $started" | bc) s from the process start, group join included)"
