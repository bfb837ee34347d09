#!/usr/bin/env bash
# Creates .venv-interop/ with the real Python quixstreams 0.5.7 from PyPI, which the
# interop tests (Tests/Interop/q05.py) use as the reference producer and consumer, and
# jsonschema and PyYAML, with which the schema tests (Tests/Schema/validate.py) check files
# against what `quixd schema` prints.
#
# Safe to run again: when the venv already imports quixstreams 0.5.7 it does nothing
# (well under a second). Prints the venv's python path as its last line, so callers can
# do `PY=$(scripts/setup-interop.sh | tail -n1)`.
#
# Notes on the pins:
#   * quixstreams 0.5.7 ships its C# core as a native (NativeAOT) library inside the
#     wheel; no .NET runtime is needed. Wheels exist for CPython 3.6-3.12 on Linux x86_64.
#   * It was built against numpy 1.x and does not work with numpy 2, hence numpy<2.
#   * Its own requirements (pandas>=1,<2 and Deprecated, with pandas' numpy, dateutil,
#     pytz) are pulled in by pip; about 290 MB, ~25 s on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-interop
PY="$VENV/bin/python"
PINS=("quixstreams==0.5.7" "numpy<2" "jsonschema>=4.18" "pyyaml")

check() {
    "$PY" - <<'EOF' 2>/dev/null
import quixstreams, jsonschema, yaml, importlib.metadata as m
assert m.version("quixstreams") == "0.5.7", m.version("quixstreams")
EOF
}

if [ -x "$PY" ] && check; then
    echo "$PWD/$PY"
    exit 0
fi

command -v python3 >/dev/null || { echo "setup-interop: python3 is not on PATH" >&2; exit 1; }
echo "setup-interop: creating $VENV with ${PINS[*]}" >&2
[ -x "$PY" ] || python3 -m venv "$VENV"
"$PY" -m pip install --quiet --disable-pip-version-check "${PINS[@]}" >&2
check || { echo "setup-interop: quixstreams 0.5.7 does not import in $VENV" >&2; "$PY" -c "import quixstreams" >&2; exit 1; }
echo "$PWD/$PY"
