#!/usr/bin/env bash
# A bench peer (../shared/bench, peers.conf) that runs PIPELINES copies of the workload's pipeline
# in one quixd process, on its one worker pool. Each copy reads the harness's input topic in its
# own consumer group. The first writes the harness's output topic, which is the one measured.
# The others write "$OUT_TOPIC-N" and add their load. With the copies even, the process handles
# about PIPELINES times the measured rate.
#
#   quixdp2 | W1,W2 | 1 | 0 | env PIPELINES=2 /work/main/Benchmarks/quixd-pipelines.sh
#
# Needs QUIXD_BIN (a release build of quixd) and the harness's environment (BOOTSTRAP, IN_TOPIC,
# OUT_TOPIC, GROUP, STATE_DIR, WORKLOAD). With state (W2), the changelog topic of each copy,
# "bench-$WORKLOAD-N-$IN_TOPIC-changelog", must exist; the mock cluster cannot create it.
set -euo pipefail
source "$(dirname "$0")/workload-stage.sh"
pipelines=${PIPELINES:-2}
files=()
for index in $(seq 1 "$pipelines"); do
  if [ "$index" -eq 1 ]; then name="bench-$WORKLOAD" group=$GROUP out=$OUT_TOPIC; else name="bench-$WORKLOAD-$index" group="$GROUP-$index" out="$OUT_TOPIC-$index"; fi
  cat > "pipeline-$index.yaml" <<YAML
apiVersion: quixd/v1
kind: Pipeline
metadata: { name: $name }
spec:
  input: { topic: $IN_TOPIC, consumerGroup: $group, startFrom: earliest }
  stages: [ $stage ]
  output: { topic: $out }
YAML
  files+=("pipeline-$index.yaml")
done
exec "$QUIXD_BIN" run --brokers "$BOOTSTRAP" --state-dir "$STATE_DIR" --http off "${files[@]}"
