#!/usr/bin/env bash
# The deployment tests, for real: the image (scripts/build-image.sh) run with podman against a
# `quixd broker` on the host network, and the Debian package (scripts/package-deb.sh) installed
# with apt into a container booted with systemd, whose units it drives. scripts/test.sh calls it.
#
#   scripts/test-deploy.sh [image] [restart] [scale] [systemd]    # default: all
#
# Skips (exit 0, saying why) where podman cannot run: not Debian, not root, podman not
# installable, or containers that do not start; QUIXD_DEPLOY_TESTS=skip skips on purpose.
# Builds quixd (release, --static-swift-stdlib), the image and the package once per run; the
# Debian base images stay in podman's store for the next run. Fails with the reasons otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-deploy.sh

skip() {
    echo "test-deploy: SKIPPED: $*" >&2
    exit 0
}
[ "${QUIXD_DEPLOY_TESTS:-run}" != skip ] || skip "QUIXD_DEPLOY_TESTS=skip"
[ "$(uname -s)" = Linux ] && command -v apt-get >/dev/null || skip "they need Debian or Ubuntu (apt, debootstrap, podman)"
[ "$(id -u)" -eq 0 ] || skip "they need root (podman's image store, debootstrap, containers booted with systemd); run as root"
deploy_apt_install podman runc debootstrap lintian dpkg-dev curl ||
    skip "podman, runc, debootstrap, lintian or dpkg-dev could not be installed with apt"
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(image restart scale systemd)
started_all=$SECONDS
RUN_ID="qdt-$$"
SUMS="$DEPLOY_ROOT/deploy/test/sums.py"
BROKER_PID=""
FAILED=()

# Every container and volume of the run is named RUN_ID-...: all of them go, whichever test made them.
cleanup() {
    local name
    if [ -n "${QUIXD_DEPLOY_KEEP:-}" ]; then note "QUIXD_DEPLOY_KEEP: left containers $RUN_ID-*, broker pid $BROKER_PID, $RUN_DIR"; return; fi
    for name in $(podman ps -a --format '{{.Names}}' | grep "^$RUN_ID-"); do podman rm -f -t 0 "$name" >/dev/null 2>&1 || true; done
    for name in $(podman volume ls --format '{{.Name}}' | grep "^$RUN_ID-"); do podman volume rm -f "$name" >/dev/null 2>&1 || true; done
    [ -z "$BROKER_PID" ] || kill "$BROKER_PID" 2>/dev/null || true
    [ -z "${RUN_DIR:-}" ] || rm -rf "$RUN_DIR"
}
trap cleanup EXIT
RUN_DIR=$(mktemp -d -t quixd-deploy.XXXXXX)
podman info >/dev/null 2>"$RUN_DIR/podman-info.err" || skip "podman does not run here: $(tail -n 2 "$RUN_DIR/podman-info.err")"

note() { echo "test-deploy: $*" >&2; }
fail() {
    echo "test-deploy: FAIL: $*" >&2
    echo "${CURRENT_TEST:-setup}: $*" >>"$RUN_DIR/failures"
    [ -z "${FEEDER:-}" ] || kill "$FEEDER" 2>/dev/null || true
    local name
    for name in $(podman ps -a --format '{{.Names}}' | grep "^$RUN_ID-" | grep -v systemd); do
        echo "test-deploy: the last lines of $name:" >&2
        podman logs --tail 15 "$name" 2>&1 | cut -c1-400 | sed 's/^/    /' >&2
    done
    if [ -n "${BOX:-}" ] && podman container exists "$BOX" 2>/dev/null; then
        echo "test-deploy: the journal of quixd's units in $BOX:" >&2
        podman exec "$BOX" journalctl --no-pager -n 40 -u 'quixd*' 2>&1 | cut -c1-300 | sed 's/^/    /' >&2
    fi
    exit 1
}
now_ms() { date +%s%3N; }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND (a command or function) every 0.2 s.
wait_until() {
    local limit=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "waited ${limit} s for $what"
        sleep 0.2
    done
}

# Runs test function NAME in a subshell (so `fail` ends that test only), with its time.
run_test() {
    local name=$1 began=$SECONDS status
    CURRENT_TEST=$name
    note "--- $name"
    set +e
    (
        set -e
        "test_$name"
    )
    status=$?
    set -e
    if [ $status -eq 0 ]; then note "--- $name: passed in $((SECONDS - began)) s"; else
        note "--- $name: FAILED after $((SECONDS - began)) s"
        FAILED+=("$name")
    fi
}

# Builds: quixd once, then the image and/or the package from that binary.
QUIXD=$(deploy_quixd_binary)
export QUIXD_BINARY="$QUIXD"
wants() { [[ " ${tests[*]} " == *" $1 "* ]]; }
if wants image || wants restart || wants scale; then
    IMAGE=$(scripts/build-image.sh | tail -n 1) || fail "scripts/build-image.sh failed"
    podman run --rm --network host --entrypoint true "$IMAGE" 2>"$RUN_DIR/probe.err" ||
        skip "podman cannot start a container here: $(tail -n 2 "$RUN_DIR/probe.err")"
fi
if wants systemd; then
    DEB=$(scripts/package-deb.sh | tail -n 1) || fail "scripts/package-deb.sh failed"
    deploy_base_systemd
fi

# One development broker for every test, with the topics the pipelines use: the mock cluster
# has no CreateTopics, so the changelog topics (PIPELINE-INPUT-changelog) are named here too.
topics=()
for pipeline in basics restart scale sums more one stall; do topics+=(--topic "$pipeline-in" --topic "$pipeline-out" --topic "$pipeline-$pipeline-in-changelog"); done
"$QUIXD" broker --partitions 4 "${topics[@]}" >"$RUN_DIR/broker.out" 2>"$RUN_DIR/broker.err" &
BROKER_PID=$!
wait_until 20 "quixd broker" test -s "$RUN_DIR/broker.out"
BROKERS=$(head -n 1 "$RUN_DIR/broker.out")

source deploy/test/container-tests.sh
source deploy/test/systemd-tests.sh
for name in "${tests[@]}"; do
    case $name in
        image) run_test image_basics ;;
        restart | scale) run_test "$name" ;;
        systemd)
            BOX="$RUN_ID-systemd"
            run_test systemd_setup
            if [[ " ${FAILED[*]} " != *" systemd_setup "* ]]; then
                for part in start reload stop instance watchdog security priority; do run_test "systemd_$part"; done
            fi
            ;;
        *) fail "unknown test $name (image, restart, scale, systemd)" ;;
    esac
done

note "${#tests[@]} test groups in $((SECONDS - started_all)) s (builds included)"
if [ ${#FAILED[@]} -gt 0 ]; then
    # CI shows only the end of the output: the reasons come last, after the logs fail() dumped.
    note "failed: ${FAILED[*]}; why:"
    sed 's/^/    /' "$RUN_DIR/failures" >&2
    exit 1
fi
