#!/usr/bin/env bash
# Produce and consume throughput of QuixKafka and of kcat on the same development broker
# (librdkafka's mock cluster in `quixd broker`): COUNT messages of SIZE bytes, keyed by 10,000
# stream ids, on a topic of 32 partitions, RUNS runs each. Each run starts a fresh broker (the
# mock slows down as it fills) and alternates which client goes first. Prints every run as JSON
# and the medians with their ratios.
#
# Keys matter: without them librdkafka's sticky partitioner piles up to twice the average on
# some partitions, past the mock's ~5 MB per partition, and the mock silently drops the oldest.
#
#   Benchmarks/kafka-vs-kcat.sh [COUNT=1000000] [SIZE=100] [RUNS=3]
#
# kcat runs with enable.idempotence=true so both clients produce with the same guarantees
# (QuixKafka's default; acks=all is librdkafka's default for both).
set -euo pipefail
cd "$(dirname "$0")"
count=${1:-1000000}
size=${2:-100}
runs=${3:-3}

swift build -c release --package-path .. --product quixd >/dev/null
swift build -c release --product KafkaThroughput >/dev/null
quixd="$(swift build -c release --package-path .. --show-bin-path)/quixd"
bench="$(swift build -c release --show-bin-path)/KafkaThroughput"

work=$(mktemp -d)
broker_pid=""
trap 'kill $broker_pid 2>/dev/null || true; rm -rf "$work"' EXIT
start_broker() {
    kill $broker_pid 2>/dev/null || true
    wait $broker_pid 2>/dev/null || true
    rm -f "$work/broker.out"
    "$quixd" broker --partitions 32 --topic kcat --topic quix >"$work/broker.out" 2>"$work/broker.err" &
    broker_pid=$!
    for _ in $(seq 1 100); do [ -s "$work/broker.out" ] && break; sleep 0.1; done
    brokers=$(head -1 "$work/broker.out")
}

head -c "$size" /dev/zero | tr '\0' 'x' >"$work/line"
python3 -c "
import sys
value = open(sys.argv[1]).read()
with open(sys.argv[3], 'w') as out:
    for i in range(int(sys.argv[2])):
        out.write(f'stream-{i % 10000}\t{value}\n')
" "$work/line" "$count" "$work/input"

now() { date +%s.%N; }
kcat_run() {  # mode topic
    local start end
    start=$(now)
    if [ "$1" = produce ]; then
        kcat -P -b "$brokers" -t "$2" -X enable.idempotence=true -K '\t' -l "$work/input"
    else
        kcat -C -b "$brokers" -t "$2" -o beginning -e -q -f '%s\n' >"$work/kcat.out"
        [ "$(wc -l <"$work/kcat.out")" -eq "$count" ] || { echo "kcat read $(wc -l <"$work/kcat.out") messages" >&2; exit 1; }
    fi
    end=$(now)
    python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print('{\"client\":\"kcat\",\"mode\":\"%s\",\"messages\":%d,\"seconds\":%f,\"msgs_per_s\":%d}' % (sys.argv[4], n, s, n/s))" "$start" "$end" "$count" "$1"
}

for run in $(seq 1 "$runs"); do
    start_broker
    if [ $((run % 2)) -eq 1 ]; then
        kcat_run produce kcat
        "$bench" produce "$brokers" quix "$count" "$size"
        kcat_run consume kcat
        "$bench" consume "$brokers" quix "$count"
    else
        "$bench" produce "$brokers" quix "$count" "$size"
        kcat_run produce kcat
        "$bench" consume "$brokers" quix "$count"
        kcat_run consume kcat
    fi
done | tee "$work/results.jsonl"

python3 - "$work/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
median = lambda client, mode: statistics.median(r["msgs_per_s"] for r in rows if r["client"] == client and r["mode"] == mode)
for mode in ("produce", "consume"):
    quix, kcat = median("quixkafka", mode), median("kcat", mode)
    print(f"{mode}: QuixKafka {quix:,.0f} msg/s, kcat {kcat:,.0f} msg/s, ratio {quix / kcat:.2f}")
PY
