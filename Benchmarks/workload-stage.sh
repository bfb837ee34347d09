# Sourced by the bench peers here: sets `stage` to the pipeline stage (one flow-style YAML
# mapping) of the harness's $WORKLOAD, W1 (compute) or W2 (cumulative sum), and checks QUIXD_BIN.
: "${QUIXD_BIN:?set QUIXD_BIN to a release build of quixd}"
case "$WORKLOAD" in
  W1) stage='{ id: total, uses: compute, with: { column: gForceTotal, expression: "abs(gForceX) + abs(gForceY) + abs(gForceZ)" } }' ;;
  W2) stage='{ id: sum, uses: cumulative, with: { column: gForceX, aggregate: sum, as: gForceX_sum } }' ;;
  *) echo "unknown workload $WORKLOAD" >&2; exit 2 ;;
esac
