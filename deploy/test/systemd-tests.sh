# The systemd tests of scripts/test-deploy.sh (sourced by it): quixd's .deb installed with apt
# into a container booted with systemd (on the host network, with the test's broker), its units
# driven with systemctl.

SD_HTTP=18180   # quixd.service's /readyz and /metrics here (host network: not 8080)

# systemctl, journalctl & co. in the systemd container.
in_box() { podman exec "$BOX" "$@"; }
unit_property() { in_box systemctl show -p "$2" --value "$1"; }
journal() { in_box journalctl --no-pager -o cat -u "$1"; }
put_file() { podman exec -i "$BOX" sh -c "cat >'$1'"; }

pipeline_yaml() {   # NAME INTERVAL: NAME-in → NAME-out with a running sum per stream
    printf 'apiVersion: quixd/v1\nkind: Pipeline\nmetadata: { name: %s }\nspec:\n  input: { topic: %s-in }\n  stages:\n    - { id: sum, uses: cumulative, with: { column: x, aggregate: sum, as: x_sum } }\n  output: { topic: %s-out }\n  checkpoint: { interval: %s }\n' "$1" "$1" "$1" "$2"
}

# Boots the container BOX and installs the package; the other systemd tests need it.
test_systemd_setup() {
    # The stall test's instance keeps its state on a 256 kB tmpfs, which its data fills.
    podman run -d --name "$BOX" --systemd=always --network host --tmpfs /var/lib/quixd/stall:rw,size=256k,mode=0750 \
        "$BASE_SYSTEMD" >/dev/null 2>"$RUN_DIR/box.err" || fail "podman run --systemd=always: $(cat "$RUN_DIR/box.err")"
    local state
    # Right after the start, systemctl may find no bus yet: ask until systemd answers.
    wait_until 60 "systemd in the container" sh -c "podman exec $BOX systemctl is-system-running --wait 2>/dev/null | grep -qE 'running|degraded'"
    state=$(in_box systemctl is-system-running 2>/dev/null || true)
    [ "$state" = running ] || note "systemd in the container: $state ($(in_box systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' '))"
    [ "$state" = running ] || [ "$state" = degraded ] || fail "systemd did not come up: $state"

    podman cp "$DEB" "$BOX:/root/" || fail "podman cp $DEB"
    local began=$SECONDS
    in_box sh -c "cd /root && DEBIAN_FRONTEND=noninteractive apt install -y ./$(basename "$DEB")" >"$RUN_DIR/apt.log" 2>&1 ||
        fail "apt install ./$(basename "$DEB"): $(tail -n 5 "$RUN_DIR/apt.log")"
    note "systemd: apt install of the package and its Depends in $((SECONDS - began)) s"
    in_box id quixd >/dev/null || fail "the package made no user quixd"
    [ "$(in_box stat -c '%a %U:%G' /etc/quixd/quixd.yaml)" = "640 root:quixd" ] || fail "/etc/quixd/quixd.yaml is $(in_box stat -c '%a %U:%G' /etc/quixd/quixd.yaml)"
    grep -q /etc/quixd/quixd.yaml <<<"$(in_box dpkg-query -W -f='${Conffiles}' quixd)" || fail "quixd.yaml is no conffile"
    # The reload defect: the unit may not rely on procps (/bin/kill), which this system lacks.
    ! grep -q "install ok" <<<"$(in_box dpkg-query -W -f='${Status}' procps 2>/dev/null)" || fail "procps is installed: the reload test would prove nothing"

    # An admin's config: the test broker, HTTP off 8080, a short session (the mock broker
    # ignores static membership; a restarted member waits for its old session to end).
    in_box sed -i -e "s|brokers: localhost:9092|brokers: $BROKERS|" -e "s|listen: 127.0.0.1:8080|listen: 127.0.0.1:$SD_HTTP|" \
        -e 's|^  clientId: quixd|  clientId: quixd\n  properties: { session.timeout.ms: "6000" }|' /etc/quixd/quixd.yaml
    # sums checkpoints every 30 s, so that only the shutdown's checkpoint commits in the stop test.
    pipeline_yaml sums 30s | put_file /etc/quixd/pipelines/sums.yaml
}

# Back to the state after setup, whatever the previous test left: quixd's units stopped and
# their failures forgotten, only sums.yaml in the pipelines, no drop-ins.
systemd_reset() {
    in_box sh -c 'systemctl stop "quixd*" ; systemctl reset-failed "quixd*"; cd /etc/quixd/pipelines && ls | grep -vx sums.yaml | xargs -r rm -f; rm -rf /etc/systemd/system/quixd*.service.d; systemctl daemon-reload' 2>/dev/null || true
}

# systemctl start returns once quixd sent READY=1 (with its STATUS=), and the unit is active.
test_systemd_start() {
    systemd_reset
    local began took
    began=$(now_ms)
    in_box systemctl start quixd || fail "systemctl start quixd: $(journal quixd | tail -n 5)"
    took=$(( $(now_ms) - began ))
    [ "$(unit_property quixd ActiveState)/$(unit_property quixd SubState)" = active/running ] || fail "quixd is $(unit_property quixd ActiveState)"
    # STATUS= came with READY=1: the notification reached systemd.
    [ "$(unit_property quixd StatusText)" = "1 pipelines running" ] || fail "StatusText: $(unit_property quixd StatusText)"
    # start waited for READY=1, sent after the pipelines started (logged before systemd's "Started").
    local order
    order=$(journal quixd | grep "pipeline started\|Started quixd.service" | cut -c1-60)
    [[ "$order" == *"pipeline started"*"Started quixd.service"* ]] ||
        fail "systemd reported quixd started before its pipelines did: $(journal quixd | tail -n 20)"
    note "systemd: systemctl start quixd returned after READY=1 in $took ms"
}

# systemctl reload: a new file starts its pipeline; a broken one is refused and logged, and the
# unit stays active with the same main process.
test_systemd_reload() {
    systemd_reset
    in_box systemctl start quixd
    local pid
    pid=$(unit_property quixd MainPID)
    pipeline_yaml more 1s | put_file /etc/quixd/pipelines/more.yaml
    in_box systemctl reload quixd || fail "systemctl reload quixd: $(journal quixd | tail -n 5)"
    wait_until 20 "the reload to start pipeline more" sh -c "podman exec $BOX journalctl -o cat -u quixd | grep -q 'reload started a pipeline.*pipeline=more'"
    [ "$(unit_property quixd StatusText)" = "pipeline files reloaded" ] || fail "StatusText after reload: $(unit_property quixd StatusText)"

    printf 'apiVersion: quixd/v1\nkind: Pipeline\nmetadata: { name: broken }\nspec:\n  input: { topic: 42 }\n' | put_file /etc/quixd/pipelines/broken.yaml
    in_box systemctl reload quixd || fail "systemctl reload quixd with a broken file failed"
    wait_until 20 "the refusal in the journal" sh -c "podman exec $BOX journalctl -o cat -u quixd | grep -q 'reload refused a pipeline file.*broken.yaml:[0-9]*:[0-9]*'"
    [ "$(unit_property quixd ActiveState)" = active ] || fail "quixd is $(unit_property quixd ActiveState) after the broken reload"
    [ "$(unit_property quixd MainPID)" = "$pid" ] || fail "the reloads restarted quixd"
    wait_until 30 "sums and more ready" sh -c "curl -fsS http://127.0.0.1:$SD_HTTP/readyz | grep -q 'more ready' && curl -fsS http://127.0.0.1:$SD_HTTP/readyz | grep -q 'sums ready'"
    in_box rm /etc/quixd/pipelines/more.yaml /etc/quixd/pipelines/broken.yaml
    in_box systemctl reload quixd
}

sums_read_at_least() { [ "$(http_get "$SD_HTTP" /metrics | python3 "$SUMS" metric quixd_messages_in_total pipeline=sums)" -ge "$1" ] 2>/dev/null; }

# systemctl stop: the pipelines checkpoint within TimeoutStopSec and quixd exits 0. Shown by
# the next start: it reads nothing again (sums checkpoints every 30 s: only the stop committed).
test_systemd_stop() {
    systemd_reset
    in_box systemctl start quixd
    python3 "$SUMS" batches "$RUN_DIR/stop-batches" 8 40 20
    for batch in "$RUN_DIR"/stop-batches/*.jsonl; do "$QUIXD" produce --brokers "$BROKERS" --topic sums-in --input "$batch" >/dev/null; done
    wait_until 30 "sums to read its input" sums_read_at_least 16
    local read_again began took limit
    limit=$(unit_property quixd TimeoutStopUSec)
    began=$(now_ms)
    in_box systemctl stop quixd
    took=$(( $(now_ms) - began ))
    [ "$(unit_property quixd Result)" = success ] || fail "stop: Result=$(unit_property quixd Result), $(journal quixd | tail -n 5)"
    grep -q "quixd stopped" <<<"$(journal quixd)" || fail "quixd did not log its stop"
    note "systemd: systemctl stop quixd took $took ms (TimeoutStopSec $limit)"
    [ "$took" -lt 45000 ] || fail "stop took $took ms"
    in_box systemctl start quixd
    wait_until 30 "sums ready again" sh -c "curl -fsS http://127.0.0.1:$SD_HTTP/readyz | grep -q 'sums ready'"
    sleep 3
    read_again=$(http_get "$SD_HTTP" /metrics | python3 "$SUMS" metric quixd_messages_in_total pipeline=sums)
    [ "$read_again" = absent ] || [ "$read_again" -eq 0 ] || fail "after the stop, sums read $read_again messages again: its offsets were not committed"
}

# quixd@NAME runs /etc/quixd/pipelines/NAME.yaml alone, with state in /var/lib/quixd/NAME.
test_systemd_instance() {
    systemd_reset
    pipeline_yaml one 1s | put_file /etc/quixd/pipelines/one.yaml
    in_box systemctl start quixd@one || fail "systemctl start quixd@one: $(journal quixd@one | tail -n 5)"
    [ "$(unit_property quixd@one ActiveState)" = active ] || fail "quixd@one is $(unit_property quixd@one ActiveState)"
    wait_until 20 "quixd@one to join" sh -c "podman exec $BOX journalctl -o cat -u quixd@one | grep -q 'partitions assigned'"
    local started
    started=$(journal quixd@one | sed -n 's/.*pipeline started.*pipeline=\([a-z]*\).*/\1/p' | sort -u | tr '\n' ' ')
    [ "$started" = "one " ] || fail "quixd@one started pipelines: $started"
    [ "$(in_box stat -c %U /var/lib/quixd/one/one)" = quixd ] || fail "no state of one in /var/lib/quixd/one"
    [ "$(unit_property quixd@one StatusText)" = "1 pipelines running" ] || fail "quixd@one StatusText: $(unit_property quixd@one StatusText)"
    in_box systemctl stop quixd@one
    in_box rm /etc/quixd/pipelines/one.yaml
}

# A pipeline whose checkpoints fail (its state volume is full) makes no progress: quixd stops
# the watchdog pings and systemd restarts it. An idle instance meanwhile keeps pinging. Both
# as quixd@ instances (quixd.service would load every file of the directory, stall.yaml too).
test_systemd_watchdog() {
    systemd_reset
    in_box systemctl stop quixd
    pipeline_yaml stall 500ms | put_file /etc/quixd/pipelines/stall.yaml
    local unit
    for unit in quixd@stall quixd@sums; do
        in_box mkdir -p "/etc/systemd/system/$unit.service.d"
        printf '[Service]\nWatchdogSec=10\n' | put_file "/etc/systemd/system/$unit.service.d/watchdog.conf"
    done
    in_box systemctl daemon-reload
    in_box systemctl start quixd@sums quixd@stall || fail "systemctl start quixd@sums quixd@stall: $(journal quixd@stall | tail -n 5)"
    local began=$SECONDS priority_before
    priority_before=$(grep -c "Failed to set thread priority" <<<"$(journal quixd@sums)" || true)
    # 2000 streams a batch: their running sums fill the 256 kB volume within a few batches.
    python3 "$SUMS" batches "$RUN_DIR/stall-batches" 2000 200 2
    ( for batch in "$RUN_DIR"/stall-batches/*.jsonl; do
        "$QUIXD" produce --brokers "$BROKERS" --topic stall-in --input "$batch" >/dev/null 2>&1 || true; sleep 1
    done ) &
    FEEDER=$!
    wait_until 60 "the state volume to fill" sh -c "podman exec $BOX journalctl -o cat -u quixd@stall | grep -q 'diskFull'"
    note "systemd: quixd@stall's checkpoints fail (disk full) $((SECONDS - began)) s after its input began; more keeps coming"
    wait_until 150 "systemd to restart quixd@stall on its watchdog" sh -c "podman exec $BOX journalctl -o cat -u quixd@stall | grep -q 'Watchdog timeout'"
    kill "$FEEDER" 2>/dev/null || true
    note "systemd: watchdog restart of quixd@stall $((SECONDS - began)) s after its input began"
    local log
    log=$(journal quixd@stall)
    grep -q "pings withheld" <<<"$log" || fail "quixd@stall did not log why it stopped pinging"
    grep -q "pipeline makes no progress.*pipeline=stall" <<<"$log" || fail "quixd@stall did not name the stalled pipeline"
    wait_until 30 "quixd@stall to be started again" sh -c "[ \"\$(podman exec $BOX systemctl show -p NRestarts --value quixd@stall)\" -ge 1 ]"
    # Idle all along: pinged, never restarted, and no new thread-priority lines from the pinger.
    [ "$(unit_property quixd@sums NRestarts)" = 0 ] && [ "$(unit_property quixd@sums ActiveState)" = active ] || fail "the idle quixd@sums was restarted"
    ! grep -q "Watchdog timeout" <<<"$(journal quixd@sums)" || fail "the idle quixd@sums hit its watchdog"
    [ "$(grep -c "Failed to set thread priority" <<<"$(journal quixd@sums)" || true)" = "$priority_before" ] ||
        fail "the watchdog pings log thread-priority failures"
    in_box systemctl stop quixd@stall quixd@sums
    in_box rm -rf /etc/quixd/pipelines/stall.yaml /etc/systemd/system/quixd@sums.service.d /etc/systemd/system/quixd@stall.service.d
    in_box systemctl daemon-reload
}

# systemd-analyze security: an exposure of 2.0 or less for both units.
test_systemd_security() {
    systemd_reset
    local unit exposure
    for unit in quixd.service quixd@one.service; do
        exposure=$(in_box systemd-analyze security --no-pager "$unit" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
        [ -n "$exposure" ] || fail "systemd-analyze security $unit gave no exposure"
        note "systemd: systemd-analyze security $unit: $exposure"
        awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "$unit exposure $exposure > 2.0"
    done
}

# "Failed to set thread priority for worker thread: pqc=… errno=13": libdispatch asks nice -4
# for the threads of its user-interactive root queue (its own, not quixd's), which the kernel
# refuses without RLIMIT_NICE. LimitNICE=-4 allows it where systemd may set the limit: no line
# then. Where it may not (a container without CAP_SYS_RESOURCE, like this one) the lines may
# only come from that one queue (one pqc): none from quixd's tasks (the watchdog test shows
# that idle pings add none).
test_systemd_priority() {
    systemd_reset
    in_box systemctl start quixd
    sleep 5
    local pid limit log lines queues
    pid=$(unit_property quixd MainPID)
    limit=$(in_box awk '/Max nice priority/ {print $4}' "/proc/$pid/limits")
    log=$(in_box journalctl --no-pager -o cat -u quixd "_PID=$pid")
    lines=$(grep -c "Failed to set thread priority" <<<"$log" || true)
    queues=$(sed -n 's/.*Failed to set thread priority.*pqc=\(0x[0-9a-f]*\).*/\1/p' <<<"$log" | sort -u | wc -l)
    note "systemd: RLIMIT_NICE of quixd $limit; thread-priority lines since its start: $lines, from $queues root queue(s)"
    if [ "$limit" -ge 24 ]; then
        [ "$lines" -eq 0 ] || fail "$lines thread-priority lines though LimitNICE=-4 applies"
    else
        [ "$queues" -le 1 ] || fail "thread-priority lines from $queues root queues (only libdispatch's user-interactive one expected)"
    fi
    in_box systemctl stop quixd
}
