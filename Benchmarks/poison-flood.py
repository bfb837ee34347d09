#!/usr/bin/env python3
"""Poison flood: quixd's W1 pipeline with a dead-letter policy, over N good messages of the shared
bench (10 rows x 3 parameters, 50 streams and partitions) with BAD malformed ones mixed in, against
the same N good messages alone. Prints one JSON line per run: messages handled per second (good
and bad, from quixd's start to the last output or dead letter) and the steady rate (10-90 %).

    QUIX3_PY=... QUIXD_BIN=... $QUIX3_PY Benchmarks/poison-flood.py [N=100000] [BAD=10000]

Uses ../shared/bench (mockbroker.py, gen.py, runner.py) beside this repository, or BENCH_DIR.
"""
import json, os, random, subprocess, sys, tempfile, time

BENCH = os.environ.get("BENCH_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/bench"))
sys.path.insert(0, BENCH)
import gen, runner  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402

STREAMS = PARTITIONS = 50
PIPELINE = """apiVersion: quixd/v1
kind: Pipeline
metadata: { name: flood }
spec:
  input: { topic: in, startFrom: earliest }
  stages:
    - { id: total, uses: compute, with: { column: gForceTotal, expression: "abs(gForceX) + abs(gForceY) + abs(gForceZ)" } }
  output: { topic: out }
  onError: { policy: dead-letter, topic: dlq }
"""


def poison(i: int) -> bytes:
    kind = i % 4
    if kind == 0:
        return b"\x01" + bytes(random.Random(i).getrandbits(8) for _ in range(8 + i % 50))
    if kind == 1:
        return b'{"C":"JT","K":"ParameterData","V":{"Timestamps":"poison %d","NumericValues":{}}}' % i
    if kind == 2:
        return b'{"C":"XX","K":"Mystery","V":{"n":%d}}' % i
    return b"[" * 5000 + b"%d" % i + b"]" * 5000


def produce(bootstrap: str, n: int, bad: int):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "queue.buffering.max.messages": 500000})
    every = n // bad if bad else 0
    b = 0
    for i in range(n):
        s = i % STREAMS
        p.produce("in", gen.make_value(s, i // STREAMS, 10), gen.stream_id(s).encode(), partition=s % PARTITIONS)
        if every and i % every == 0 and b < bad:
            # Spread over every stream (the mock keeps only about 5 MB per partition).
            t = b % STREAMS
            p.produce("in", poison(b), gen.stream_id(t).encode(), partition=t % PARTITIONS)
            b += 1
        if (i & 1023) == 0:
            p.poll(0)
    if p.flush(120):
        raise SystemExit("not every input message was delivered")
    return b


def run(n: int, bad: int) -> dict:
    rundir = tempfile.mkdtemp(prefix="quixd-flood-")
    broker, bootstrap = runner.start_broker(rundir, sys.executable, [f"in:{PARTITIONS}", f"out:{PARTITIONS}", f"dlq:{PARTITIONS}"])
    try:
        bad = produce(bootstrap, n, bad)
        with open(os.path.join(rundir, "flood.yaml"), "w") as f:
            f.write(PIPELINE)
        watcher = Consumer({"bootstrap.servers": bootstrap, "group.id": "watcher"})
        started = time.time()
        log = open(os.path.join(rundir, "quixd.log"), "w")
        quixd = subprocess.Popen([os.environ["QUIXD_BIN"], "run", "--brokers", bootstrap, "--http", "off", "flood.yaml"],
                                 cwd=rundir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        samples, deadline = [], started + 600
        while time.time() < deadline:
            done = runner.end_offsets(watcher, "out", PARTITIONS) + runner.end_offsets(watcher, "dlq", PARTITIONS)
            samples.append((time.time(), done))
            if done >= n + bad:
                break
            time.sleep(0.1)
        wall = samples[-1][0] - started
        runner.kill_group(quixd)
        total = n + bad
        t10 = next(t for t, d in samples if d >= total * 0.1)
        t90 = next(t for t, d in samples if d >= total * 0.9)
        lines = open(os.path.join(rundir, "quixd.log")).read().count("message dead-lettered")
        return {"good": n, "bad": bad, "handled": samples[-1][1], "wall_s": round(wall, 2),
                "msgs_per_s": round(total / wall), "steady_msgs_per_s": round(total * 0.8 / (t90 - t10)),
                "dead_letter_log_lines": lines}
    finally:
        runner.kill_group(broker)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    bad = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    for good_only in (True, False):
        print(json.dumps(run(n, 0 if good_only else bad)), flush=True)
