#!/usr/bin/env bash
# Makes the golden vectors in Tests/Fixtures/vectors with the real quixstreams 0.5.7 (from
# PyPI, in .venv-interop) against a `quixd broker`, and compares them with a reference set:
#
#   scripts/make-vectors.sh                 # writes Tests/Fixtures/vectors, then compares it
#                                           # with itself before the run (git's copy)
#   scripts/make-vectors.sh --compare DIR   # also compares with DIR (e.g. ../shared/quix-protocol/vectors)
#   scripts/make-vectors.sh --check         # writes to a temporary directory and compares it
#                                           # with Tests/Fixtures/vectors; changes nothing
#
# Every message's bytes are the same on each run; consumer_acceptance.json differs only in the
# broker's clock (see scripts/vectors/make_vectors.py). About 5 minutes: the 30 acceptance
# cases each run the real consumer for a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
reference=""
while [ $# -gt 0 ]; do
    case $1 in
        --check) check=true ;;
        --compare) reference=$2; shift ;;
        *) echo "make-vectors: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

scripts/setup.sh >/dev/null   # kcat, librdkafka
python=$(scripts/setup-interop.sh | tail -n 1)
swift build --product quixd >/dev/null
quixd="$(swift build --show-bin-path)/quixd"
work=$(mktemp -d -t quixd-vectors.XXXXXX)
"$quixd" broker --partitions 4 >"$work/broker.out" 2>"$work/broker.err" &
broker=$!
trap 'kill $broker 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/broker.out" ] && break; sleep 0.2; done
export BROKERS
BROKERS=$(head -n 1 "$work/broker.out")
[ -n "$BROKERS" ] || { echo "make-vectors: quixd broker did not start: $(cat "$work/broker.err")" >&2; exit 1; }

fixtures=Tests/Fixtures/vectors
status=0
if $check; then
    out="$work/vectors"
    "$python" scripts/vectors/make_vectors.py write "$out"
    "$python" scripts/vectors/make_vectors.py compare "$out" "$fixtures" || status=1
else
    out=$fixtures
    cp -r "$fixtures" "$work/before" 2>/dev/null || true
    "$python" scripts/vectors/make_vectors.py write "$out"
    [ ! -f "$work/before/basic.jsonl" ] || "$python" scripts/vectors/make_vectors.py compare "$out" "$work/before" || status=1
fi
[ -z "$reference" ] || "$python" scripts/vectors/make_vectors.py compare "$out" "$reference" || status=1
exit $status
