#!/usr/bin/env bash
# Instructions per message of the W1 codec path (decode the shared bench's 10×3 + tag message
# into a frame, add a column, encode the output message), counted by callgrind: deterministic,
# unlike timings on a shared machine. Prints the count per message, the difference between a
# run of N and one of N/10 messages, so start-up does not count.
#
#   Benchmarks/codec-callgrind.sh [N=20000]
set -euo pipefail
n=${1:-20000}
cd "$(dirname "$0")"
swift build -c release --product CodecWorkload >/dev/null
bin="$(swift build -c release --show-bin-path)/CodecWorkload"
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
echo "instructions per message: $(( (total - total_small) / (n - small) )) (callgrind, $small and $n messages)"
