# The container tests of scripts/test-deploy.sh (sourced by it): the image run with podman as
# deploy/container.env says, against a `quixd broker` on the host network.
#
# Every container shares the host's network (the mock broker advertises 127.0.0.1), so
# containers that run side by side (the scale test) get their own HTTP port with QUIXD_HTTP; a
# container alone uses the image's 8080, which its HEALTHCHECK probes.

# shellcheck source=../container.env
source "$DEPLOY_ROOT/deploy/container.env"

ROWS_PER_BATCH=4
BATCH_PAUSE=0.25

# A pipeline NAME reading NAME-in and writing NAME-out with a running sum per stream (stateful,
# changelogged to NAME-NAME-in-changelog), in a directory of its own; prints the directory.
sums_pipeline() {
    local directory="$RUN_DIR/pipelines-$1"
    mkdir -p "$directory"
    cat >"$directory/$1.yaml" <<EOF
apiVersion: quixd/v1
kind: Pipeline
metadata: { name: $1 }
spec:
  input: { topic: $1-in }
  stages:
    - { id: sum, uses: cumulative, with: { column: x, aggregate: sum, as: x_sum } }
  output: { topic: $1-out }
  checkpoint: { interval: 500ms }
EOF
    echo "$directory"
}

# Runs the image as the StatefulSet runs it: NAME VOLUME MEMBER PIPELINES [podman args...].
run_quixd() {
    local name=$1 volume=$2 member=$3 pipelines=$4
    shift 4
    podman run -d --name "$name" --network host \
        --user "$USER_ID:$GROUP_ID" --read-only --tmpfs "/tmp:size=${TMP_SIZE_MB}m" --cap-drop ALL --security-opt no-new-privileges \
        --stop-timeout "$GRACE_SECONDS" \
        -v "$volume:$STATE_DIR" \
        -v "$DEPLOY_ROOT/deploy/test/quixd.yaml:$CONFIG:ro" -v "$pipelines:$PIPELINES_DIR:ro" \
        -e "QUIXD_BROKERS=$BROKERS" -e "$MEMBER_ENV=$member" "$@" "$IMAGE" >/dev/null 2>"$RUN_DIR/$name.run.err" ||
        fail "podman run $name: $(cat "$RUN_DIR/$name.run.err")"
}

# GET http://127.0.0.1:PORT/PATH: the body, or nothing (status other than 200, or no answer).
http_get() { curl -fsS --max-time 2 "http://127.0.0.1:$1$2" 2>/dev/null || true; }

# The partitions /readyz on PORT lists ("0,1,2,3"), empty while not ready.
ready_partitions() { http_get "$1" "$READY_PATH" | sed -n 's/.*partitions \[\([0-9,]*\)\].*/\1/p' | head -n 1; }

metric() { http_get "$1" /metrics | python3 "$SUMS" metric "${@:2}"; }

# Conditions for wait_until.
answers_ready() { [ -n "$(http_get "$1" "$READY_PATH")" ]; }
has_partitions() { [ "$(ready_partitions "$1")" = "$2" ]; }
output_at_least() { [ "$(metric "$1" quixd_messages_out_total)" -ge "$2" ] 2>/dev/null; }
checkpoints_at_least() { [ "$(metric "$1" quixd_checkpoint_seconds_count)" -ge "$2" ] 2>/dev/null; }
# "0 messages behind" twice, 1.5 s apart: the lag is counted against the high watermark of the
# last fetch response, which lags a just-produced batch until the next fetch (at most
# fetch.wait.max.ms, 500 ms, later).
caught_up() {
    grep -q ' 0 messages behind' <<<"$(http_get "$1" "$READY_PATH")" && sleep 1.5 &&
        grep -q ' 0 messages behind' <<<"$(http_get "$1" "$READY_PATH")"
}

# Sends BATCH_DIR's batches to TOPIC, one every BATCH_PAUSE, in the background; the feeder's pid
# goes to FEEDER.
feed() {
    local directory=$1 topic=$2
    (
        for batch in "$directory"/batch-*.jsonl; do
            "$QUIXD" produce --brokers "$BROKERS" --topic "$topic" --input "$batch" >/dev/null 2>"$RUN_DIR/feed-$topic.out" ||
                { echo "feeder: produce $batch failed: $(tail -n 2 "$RUN_DIR/feed-$topic.out")"; exit 1; } >>"$RUN_DIR/feed-$topic.err"
            sleep "$BATCH_PAUSE"
        done
    ) &
    FEEDER=$!
}

# Waits for the feeder, then until the replica on PORT has read everything (0 messages behind).
drain() {
    local port=$1
    wait "$FEEDER" || fail "the feeder failed: $(cat "$RUN_DIR"/feed-*.err)"
    wait_until 120 "the replica on port $port to read all input" caught_up "$port"
}

# Reads TOPIC whole and checks every running sum: STREAMS ROWS.
check_sums() {
    local topic=$1 streams=$2 rows=$3 result
    "$QUIXD" consume --brokers "$BROKERS" --topic "$topic" --from-beginning --timeout 5s >"$RUN_DIR/$topic.jsonl" 2>"$RUN_DIR/$topic.consume.err" ||
        fail "quixd consume $topic: $(tail -n 3 "$RUN_DIR/$topic.consume.err")"
    result=$(python3 "$SUMS" check "$streams" "$rows" <"$RUN_DIR/$topic.jsonl" 2>&1) || fail "$topic: $result"
    note "$topic: $(tail -n 1 <<<"$result")"
}

# SIGTERM with the grace of the contract, as the kubelet does; fails unless quixd exits 0.
stop_quixd() {
    # (podman's complaint that there is no systemd to remove healthcheck timers from goes to a file)
    podman stop -t "$GRACE_SECONDS" "$1" >/dev/null 2>>"$RUN_DIR/podman.err"
    local code
    code=$(podman inspect --format '{{.State.ExitCode}}' "$1")
    [ "$code" = 0 ] || fail "$1 exited $code after SIGTERM: $(podman logs --tail 5 "$1" 2>&1)"
}

test_image_basics() {
    local pipelines name="$RUN_ID-basics" volume="$RUN_ID-basics-state" started
    pipelines=$(sums_pipeline basics)
    python3 "$SUMS" batches "$RUN_DIR/basics-batches" 4 20 10
    podman volume create "$volume" >/dev/null
    started=$(now_ms)
    run_quixd "$name" "$volume" quixd-0 "$pipelines"
    wait_until 60 "$READY_PATH on $HTTP_PORT" answers_ready "$HTTP_PORT"
    note "image: start to ready $(( $(now_ms) - started )) ms"
    podman healthcheck run "$name" >/dev/null || fail "podman healthcheck run: unhealthy though /readyz answers"

    [ "$(podman exec "$name" id -u):$(podman exec "$name" id -g)" = "$USER_ID:$GROUP_ID" ] || fail "runs as $(podman exec "$name" id)"
    [ "$(podman exec "$name" cat /proc/1/status | awk '/^Uid:/ {print $2}')" = "$USER_ID" ] || fail "quixd (PID 1) is not uid $USER_ID"
    ! podman exec "$name" touch /usr/local/bin/quixd-write-test 2>/dev/null || fail "the root filesystem is writable"
    podman exec "$name" grep -q " $STATE_DIR " /proc/self/mounts || fail "$STATE_DIR is not a mount"
    [ "$(podman exec "$name" awk '/^CapEff:/ {print $2}' /proc/1/status)" = 0000000000000000 ] || fail "quixd has capabilities"

    for batch in "$RUN_DIR"/basics-batches/*.jsonl; do "$QUIXD" produce --brokers "$BROKERS" --topic basics-in --input "$batch" >/dev/null 2>&1; done
    wait_until 60 "the first running sums" output_at_least "$HTTP_PORT" 8
    # Eight messages out can all come from the first batch (properties, definitions, rows per
    # stream); a SIGTERM before the second is processed leaves it for the next start, so wait.
    wait_until 60 "both batches processed" caught_up "$HTTP_PORT"
    stop_quixd "$name"
    check_sums basics-out 4 20
    # The state is in the named volume, written by quixd's user.
    local owner
    owner=$(podman run --rm --no-healthcheck --user 0 --network none -v "$volume:/state:ro" --entrypoint stat "$IMAGE" -c %u:%g /state/basics/basics-in-0/data.mdb) ||
        fail "no LMDB state in the volume"
    [ "$owner" = "$USER_ID:$GROUP_ID" ] || fail "the state in the volume belongs to $owner"
    podman healthcheck run "$name" >/dev/null 2>&1 && fail "the healthcheck passes on a stopped container"
    return 0
}

# SIGKILL mid-stream; the member comes back on the same volume (resumes from its LMDB state),
# then is killed again and comes back on a fresh volume (restores from the changelog).
test_restart() {
    local pipelines streams=16 rows=480 volume="$RUN_ID-restart-state" fresh="$RUN_ID-restart-fresh"
    pipelines=$(sums_pipeline restart)
    python3 "$SUMS" batches "$RUN_DIR/restart-batches" "$streams" "$rows" "$ROWS_PER_BATCH"
    podman volume create "$volume" >/dev/null
    podman volume create "$fresh" >/dev/null
    feed "$RUN_DIR/restart-batches" restart-in

    run_quixd "$RUN_ID-restart-a" "$volume" quixd-0 "$pipelines"
    # Killed after a few checkpoints (every partition then has state in LMDB and the changelog).
    wait_until 60 "the first container's checkpoints" checkpoints_at_least "$HTTP_PORT" 5
    podman kill -s KILL "$RUN_ID-restart-a" >/dev/null 2>>"$RUN_DIR/podman.err"

    local kept fresh_restore started first
    for phase in kept fresh; do
        local name="$RUN_ID-restart-$phase" use=$volume
        [ "$phase" = fresh ] && use=$fresh
        started=$(now_ms)
        run_quixd "$name" "$use" quixd-0 "$pipelines"
        wait_until 90 "output of $name" output_at_least "$HTTP_PORT" 1
        first=$(( $(now_ms) - started ))
        local restored messages_in
        messages_in=$(metric "$HTTP_PORT" quixd_messages_in_total)
        restored=$(podman logs "$name" 2>&1 | python3 "$SUMS" restored)
        note "restart ($phase volume): first output $first ms after podman run; changelog restores (partitions, records read, applied, seconds): $restored; messages in so far: $messages_in"
        if [ "$phase" = kept ]; then
            kept=$restored
            wait_until 60 "more checkpoints" checkpoints_at_least "$HTTP_PORT" 5
            podman kill -s KILL "$name" >/dev/null 2>>"$RUN_DIR/podman.err"
        else
            fresh_restore=$restored
        fi
    done
    # Kept volume: the LMDB state is used as it is; only the changelog's tail past the local
    # checkpoint is read: the last checkpoint's records, written to the changelog before the
    # kill and not yet to LMDB (a checkpoint writes one entry per stream at most).
    # Fresh volume: every partition's state comes from the whole changelog.
    local kept_records kept_applied partitions fresh_records fresh_applied
    read -r _ kept_records kept_applied _ <<<"$kept"
    read -r partitions fresh_records fresh_applied _ <<<"$fresh_restore"
    [ "$kept_applied" -le "$streams" ] || fail "with its volume kept, quixd applied $kept_applied changelog records (more than one checkpoint's)"
    [ "$partitions" -eq 4 ] && [ "$fresh_applied" -ge "$streams" ] || fail "with a fresh volume, the restores were: $fresh_restore"
    [ "$kept_records" -lt "$fresh_records" ] || fail "the kept volume read $kept_records changelog records, the fresh one $fresh_records"

    drain "$HTTP_PORT"
    stop_quixd "$RUN_ID-restart-fresh"
    check_sums restart-out "$streams" "$rows"
}

# 1 → 3 → 1 replicas (own volumes, own member ids) while data flows.
test_scale() {
    local pipelines streams=24 rows=400 ports=() index
    pipelines=$(sums_pipeline scale)
    python3 "$SUMS" batches "$RUN_DIR/scale-batches" "$streams" "$rows" "$ROWS_PER_BATCH"
    for index in 0 1 2; do
        ports+=($((18480 + index)))
        podman volume create "$RUN_ID-scale-$index" >/dev/null
    done
    feed "$RUN_DIR/scale-batches" scale-in
    run_quixd "$RUN_ID-scale-0" "$RUN_ID-scale-0" quixd-0 "$pipelines" -e "QUIXD_HTTP=0.0.0.0:${ports[0]}"
    wait_until 60 "one replica with every partition" has_partitions "${ports[0]}" 0,1,2,3
    for index in 1 2; do
        run_quixd "$RUN_ID-scale-$index" "$RUN_ID-scale-$index" "quixd-$index" "$pipelines" -e "QUIXD_HTTP=0.0.0.0:${ports[$index]}"
    done
    wait_until 90 "three replicas sharing the partitions" spread_over "${ports[@]}"
    note "scale: 3 replicas have partitions $(for port in "${ports[@]}"; do printf '[%s] ' "$(ready_partitions "$port")"; done)"
    for index in 1 2; do stop_quixd "$RUN_ID-scale-$index"; done
    wait_until 60 "one replica with every partition again" has_partitions "${ports[0]}" 0,1,2,3
    drain "${ports[0]}"
    stop_quixd "$RUN_ID-scale-0"
    check_sums scale-out "$streams" "$rows"
}

# Whether the replicas on PORTS are ready, each with partitions, together with 0-3 once each.
spread_over() {
    local port list all=""
    for port in "$@"; do
        list=$(ready_partitions "$port")
        [ -n "$list" ] || return 1
        all+="$list,"
    done
    [ "$(tr ',' '\n' <<<"$all" | sed '/^$/d' | sort -n | tr '\n' ,)" = "0,1,2,3," ]
}
