#!/usr/bin/env bash
# Installs what quixd needs to build and test on Debian: librdkafka, liblmdb (and its tools,
# for the state tests' child processes), kcat, chromium (the status page is tested in a real
# headless browser), and a
# Python that can make virtual environments (for the quixstreams 0.5.7 interop tests).
# Safe to run again; it installs only what is missing.
set -euo pipefail

packages=(librdkafka-dev liblmdb-dev lmdb-utils kcat pkg-config chromium)
# Debian's python3 makes venvs only with python3-venv; another python3 on PATH may not need it.
python3 -m venv --help >/dev/null 2>&1 || packages+=(python3 python3-venv)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6.1 or later is needed)" >&2; exit 1; }
