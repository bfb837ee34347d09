#!/usr/bin/env bash
# Instructions per message of a workload, counted by callgrind: deterministic, unlike timings on
# a shared machine. Prints the count per message, the difference between a run of N and one of
# N/10 messages, so start-up does not count.
#
#   Benchmarks/callgrind.sh CodecWorkload [N=20000]   the W1 codec path (decode, add a column, encode)
#   Benchmarks/callgrind.sh StateWorkload [N=20000]   W2's state work (get and set a running sum)
set -euo pipefail
workload=${1:?name a workload: CodecWorkload or StateWorkload}
n=${2:-20000}
cd "$(dirname "$0")"
swift build -c release --product "$workload" >/dev/null
bin="$(swift build -c release --show-bin-path)/$workload"
count() {
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" >/dev/null 2>&1
    callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
    rm -f "$out"
}
small=$((n / 10))
total_small=$(count "$small")
total=$(count "$n")
echo "$workload: $(( (total - total_small) / (n - small) )) instructions per message (callgrind, $small and $n messages)"
