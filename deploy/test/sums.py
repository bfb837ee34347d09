#!/usr/bin/env python3
"""Data and checks of the container tests (scripts/test-deploy.sh); standard library only.

The pipeline under test keeps a running sum of column x per stream (`cumulative`, `aggregate:
sum`, as `x_sum`), which makes every output row checkable: row r of stream s carries x(s, r) and
must carry the sum of x(s, 0..r).

  sums.py batches DIR STREAMS ROWS ROWS_PER_BATCH
      JSON lines for `quixd produce`, one file per batch: each stream's next rows as one
      ParameterData message (timestamps r+1 ms), so a feeder can send them over time.
  sums.py check STREAMS ROWS < consumed.jsonl
      Reads `quixd consume` lines of the output topic; fails unless every stream has every row
      with its exact running sum (a row written twice must carry the same sum: at least once).
  sums.py metric NAME [LABEL=VALUE ...] < metrics.txt
      The sum of a Prometheus metric's samples (with those labels) in /metrics text.
  sums.py restored < log.jsonl
      From quixd's JSON log: "PARTITIONS RECORDS APPLIED SECONDS" of the changelog restores it
      logged (SECONDS: the longest).
"""
import json
import os
import sys


def x(stream, row):
    return float((row * 7 + stream * 13) % 100 - 50)


def batches(directory, streams, rows, per_batch):
    os.makedirs(directory, exist_ok=True)
    for index, start in enumerate(range(0, rows, per_batch)):
        span = range(start, min(start + per_batch, rows))
        with open(os.path.join(directory, "batch-%04d.jsonl" % index), "w") as out:
            for stream in range(streams):
                value = {
                    "Timestamps": [(row + 1) * 1_000_000 for row in span],
                    "NumericValues": {"x": [x(stream, row) for row in span]},
                    "StringValues": {}, "BinaryValues": {}, "TagValues": {},
                }
                line = {"stream": "car-%d" % stream, "codec": "JT", "envelope": "json", "model": "ParameterData", "value": value}
                out.write(json.dumps(line, separators=(",", ":")) + "\n")


def check(streams, rows, lines):
    seen = {}  # stream -> {row: sum}
    written = duplicates = 0
    problems = []
    for line in lines:
        record = json.loads(line)
        if record.get("model") != "ParameterData":
            continue
        value = record["value"]
        sums = value["NumericValues"].get("x_sum", [])
        for timestamp, total in zip(value["Timestamps"], sums):
            row = timestamp // 1_000_000 - 1
            written += 1
            table = seen.setdefault(record["stream"], {})
            if row in table:
                duplicates += 1
                if table[row] != total:
                    problems.append("%s row %d written as %s and %s" % (record["stream"], row, table[row], total))
            table[row] = total
    for stream in range(streams):
        name, total, table = "car-%d" % stream, 0.0, seen.get("car-%d" % stream, {})
        missing = [row for row in range(rows) if row not in table]
        if missing:
            problems.append("%s: %d of %d rows missing (first: row %d)" % (name, len(missing), rows, missing[0]))
        for row in range(rows):
            total += x(stream, row)
            if row in table and table[row] != total:
                problems.append("%s row %d: running sum %s, expected %s" % (name, row, table[row], total))
                break
    for problem in problems[:20]:
        print("sums: " + problem, file=sys.stderr)
    print("%d streams x %d rows: %d rows written, %d written twice, %d problems" % (streams, rows, written, duplicates, len(problems)))
    return 1 if problems else 0


def metric(name, labels, text):
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(('%s="%s"' % tuple(label.split("=", 1))) in line for label in labels):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    print(int(total) if total.is_integer() else total if found else "absent")


def restored(lines):
    partitions = records = applied = 0
    seconds = 0.0
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") == "state restored from the changelog":
            partitions += 1
            records += int(entry.get("records", 0))
            applied += int(entry.get("applied", 0))
            seconds = max(seconds, float(str(entry.get("seconds", "0")).split()[0]))
    print(partitions, records, applied, "%.3f" % seconds)


def main(argv):
    if len(argv) >= 5 and argv[0] == "batches":
        batches(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
    elif len(argv) == 3 and argv[0] == "check":
        return check(int(argv[1]), int(argv[2]), sys.stdin)
    elif len(argv) >= 2 and argv[0] == "metric":
        metric(argv[1], argv[2:], sys.stdin.read())
    elif argv == ["restored"]:
        restored(sys.stdin)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
