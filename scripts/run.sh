#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds quixd in release mode and runs the main job: the gforce
# example pipeline on the embedded development broker, fed with the sample vehicle telemetry in
# pipelines/samples/telemetry.csv, printing what the pipeline writes. Ctrl-C stops it.
# Other arguments go to `quixd run` (another pipeline, --brokers for a real cluster, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product quixd
state=$(mktemp -d -t quixd-state.XXXXXX)
trap 'rm -rf "$state"' EXIT
"$(swift build -c release --show-bin-path)/quixd" run --state-dir "$state" --http 127.0.0.1:8080 "${@:-pipelines/gforce.yaml}"
