#!/usr/bin/env bash
# A bench peer (../shared/bench, peers.conf) that runs REPLICAS quixd processes on one pipeline,
# as replicas of a StatefulSet would: the same consumer group, a state directory (PVC) and a
# member id each. The pipeline is the harness's W1 (compute) or W2 (cumulative sum).
#
#   quixdx3 | W1,W2 | 1 | 0 | env REPLICAS=3 /work/main/Benchmarks/quixd-replicas.sh
#
# Needs QUIXD_BIN (a release build of quixd) and the harness's environment (BOOTSTRAP, IN_TOPIC,
# OUT_TOPIC, GROUP, STATE_DIR, WORKLOAD). With state, the changelog topic
# "bench-$WORKLOAD-$IN_TOPIC-changelog" must exist (the mock cluster cannot create it).
set -euo pipefail
source "$(dirname "$0")/workload-stage.sh"
replicas=${REPLICAS:-1}
cat > pipeline.yaml <<YAML
apiVersion: quixd/v1
kind: Pipeline
metadata: { name: bench-$WORKLOAD }
spec:
  input: { topic: $IN_TOPIC, consumerGroup: $GROUP, startFrom: earliest }
  stages: [ $stage ]
  output: { topic: $OUT_TOPIC }
YAML
pids=()
for index in $(seq 0 $((replicas - 1))); do
  "$QUIXD_BIN" run --brokers "$BOOTSTRAP" --state-dir "$STATE_DIR/pvc-$index" --http off \
    --set kafka.groupInstanceId="replica-$index" pipeline.yaml 2> "replica-$index.log" &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' TERM INT
wait
