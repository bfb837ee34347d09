#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs every test (unit, mock-cluster integration, CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
