#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds quixd in release mode and runs the main job.
# For now that is the development broker; the daemon on an example pipeline comes next.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product quixd
exec "$(swift build -c release --show-bin-path)/quixd" broker --topic telemetry --partitions 4 "$@"
