#!/usr/bin/env bash
# Creates .venv-deploy/ with kubernetes-validate from PyPI, which the deploy tests
# (Tests/QuixdTests/DeployTests.swift) run on deploy/kubernetes/*.yaml: it checks each manifest
# against the Kubernetes OpenAPI schemas it bundles (no cluster, no network at test time).
#
# Safe to run again: when the venv already has the pinned version it does nothing (well under a
# second). Prints the kubernetes-validate path as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-deploy
PIN="kubernetes-validate==${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
TOOL="$VENV/bin/kubernetes-validate"

check() {
    [ -x "$TOOL" ] && "$VENV/bin/python" - "${PIN#*==}" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
assert m.version("kubernetes-validate") == sys.argv[1]
PY
}

if check; then
    echo "$PWD/$TOOL"
    exit 0
fi

command -v python3 >/dev/null || { echo "setup-deploy-checks: python3 is not on PATH" >&2; exit 1; }
echo "setup-deploy-checks: creating $VENV with $PIN" >&2
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$PIN" >&2
check || { echo "setup-deploy-checks: $PIN did not install in $VENV" >&2; exit 1; }
echo "$PWD/$TOOL"
