#!/usr/bin/env bash
# Restores ENTRIES state entries from a changelog into an empty state directory and reports
# how long it took, against a plain consumer's read of the same changelog in the same session.
# The changelog is written the way a replica writes it (one key per stream, a checkpoint marker
# at the end of each partition), spread over PARTITIONS partitions because the mock cluster
# keeps only about 5 MB per partition. Each of RUNS rounds reads the changelog with a plain
# confluent-kafka consumer (Benchmarks/changelog-read.py), then starts RunningSum on an empty
# state directory, which restores every partition in its rebalance callback; the script reads
# the time the restore logged. The medians come last.
#
#   RUNS=3 Benchmarks/state-restore.sh [ENTRIES=1000000] [PARTITIONS=50]
#
# MARKER_EVERY=N writes a checkpoint marker after every N entries of a partition, as a replica
# checkpointing often does (default: one marker, at the end of each partition).
# RUNNING_SUM=PATH restores with that binary instead of the one built here (before/after).
# KAFKA=key=value,... passes librdkafka properties to both readers (RunningSum's restore
# consumer and the plain one).
# WRAP="strace -c -f -o /tmp/restore.strace" runs RunningSum under that command.
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
broker=$!
# CPU seconds (user + system) a process has used so far.
cpu() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
for _ in $(seq 100); do [ -s "$work/broker.log" ] && break; sleep 0.1; done
bootstrap=$(head -n1 "$work/broker.log")

"$py" - "$bootstrap" "$group-in-changelog" "$entries" "$partitions" "${MARKER_EVERY:-0}" <<'EOF'
import struct, sys, time
from confluent_kafka import Producer
bootstrap, topic, entries, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
marker_every = int(sys.argv[5])
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 1000000})
store = b"default"
marker = b"\xff\xffcheckpoint"
def produce(key, value, partition):
    while True:
        try:
            producer.produce(topic, key=key, value=value, partition=partition)
            return
        except BufferError:
            producer.poll(0.05)
started = time.monotonic()
written = [0] * partitions
for i in range(entries):
    stream = b"s%d" % i
    key = struct.pack(">H", len(store)) + store + struct.pack(">H", len(stream)) + stream + b"gForceX_sum"
    value = b"\x01" + struct.pack("<d", float(i))
    partition = i % partitions
    produce(key, value, partition)
    written[partition] += 1
    if marker_every and written[partition] % marker_every == 0:
        produce(marker, struct.pack(">q", 0), partition)
for partition in range(partitions):  # checkpoint markers: the input (empty) starts at offset 0
    produce(marker, struct.pack(">q", 0), partition)
producer.flush()
print(f"wrote {entries} changelog entries over {partitions} partitions in {time.monotonic() - started:.1f} s", file=sys.stderr)
EOF

runs=${RUNS:-3}
plain_times=() restore_times=()
for run in $(seq "$runs"); do
    broker_before=$(cpu $broker)
    plain=$("$py" "$root/Benchmarks/changelog-read.py" "$bootstrap" "$group-in-changelog" "$partitions")
    broker_plain=$(echo "$(cpu $broker) - $broker_before" | bc)
    broker_before=$(cpu $broker)
    rm -rf "$work/state"
    started=$(date +%s.%N)
    ${WRAP:-} "${RUNNING_SUM:-$bin/RunningSum}" --brokers "$bootstrap" --input in --output out --group "$group" --state-dir "$work/state" \
        --kafka session.timeout.ms=6000 ${KAFKA:+$(printf -- ' --kafka %s' ${KAFKA//,/ })} >"$work/run.log" 2>&1 &
    pid=$!
    for _ in $(seq 1200); do
        grep -q "state restore finished" "$work/run.log" && break
        [ "$(grep -c "state restored from the changelog" "$work/run.log" || true)" -ge "$partitions" ] && break
        sleep 0.1
    done
    ended=$(date +%s.%N)
    restorer=$(pgrep -n -P $pid || echo $pid)  # RunningSum, also under WRAP
    restore_cpu=$(cpu $restorer)
    # Peak resident memory, and at the end the anonymous part and the part mapped from files
    # (LMDB's data files, which the kernel can reclaim).
    restore_rss=$(awk '/VmHWM/ { h = $2 } /RssAnon/ { a = $2 } /RssFile/ { f = $2 }
        END { printf "%d MB (at the end %d MB anonymous, %d MB of files)", h / 1024, a / 1024, f / 1024 }' /proc/$restorer/status 2>/dev/null || echo "?")
    broker_restore=$(echo "$(cpu $broker) - $broker_before" | bc)
    kill -TERM $restorer 2>/dev/null || true
    wait $pid 2>/dev/null || true
    cp "$work/run.log" "$work/run-$run.log"
    restored=$(grep "state restored from the changelog" "$work/run.log" | grep -o 'applied=[0-9]*' | cut -d= -f2 | paste -sd+ | bc)
    # The partitions restore side by side; each logs the time since the restore began.
    seconds=$(grep "state restored from the changelog" "$work/run.log" | grep -o 'seconds=[0-9.]*' | cut -d= -f2 | sort -g | tail -n1)
    summary=$(grep "state restore finished" "$work/run.log" | sed 's/^.*quixd[.a-z]*: //' || true)
    plain_times+=("$(echo "$plain" | grep -o 'in [0-9.]* s' | grep -o '[0-9.]*')")
    restore_times+=("$seconds")
    echo "run $run: plain consumer: $plain (broker CPU $broker_plain s)"
    echo "       restore: $restored entries in $seconds s ($(echo "$ended - $started" | bc) s from the process start, group join included; RunningSum CPU $restore_cpu s, peak RSS $restore_rss, broker CPU $broker_restore s)"
    [ -n "$summary" ] && echo "    $summary"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
plain_median=$(median "${plain_times[@]}")
restore_median=$(median "${restore_times[@]}")
echo "median of $runs: plain read $plain_median s, restore $restore_median s ($(echo "scale=2; $restore_median / $plain_median" | bc)x)"
