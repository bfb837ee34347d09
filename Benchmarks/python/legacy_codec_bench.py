#!/usr/bin/env python3
"""Micro-benchmark of the *legacy* Quix 0.5 wire-format codec in quixstreams 3.x.

Measures how fast quixstreams 3.28.1's `QuixDeserializer` / `QuixTimeseriesSerializer`
(`quixstreams.models.serializers.quix`) decode and encode legacy ParameterData messages

    {"C":"JT","K":"ParameterData","V":{...},"S":<start of V>,"E":<end of V>}

No Kafka is involved: the messages are built in memory and the (de)serializers are
called exactly the way the 3.28.1 Application calls them.

Levels (all run by default):

* ``codec``: the serializer objects alone, called as ``Topic.row_deserialize`` /
  ``Topic.row_serialize`` call them:
    - decode: ``list(QuixDeserializer()(value=<bytes>, ctx=SerializationContext(topic,
      field="value", headers=None)))``.  ``__call__`` is a generator, so it is drained
      (the Application drains it into a list of Rows).  Legacy messages carry no Kafka
      headers, so ``ctx.headers`` is ``None``, as ``message.headers()`` returns.  The
      key is not needed by the value deserializer.
    - encode: ``QuixTimeseriesSerializer()(value=<row dict>, ctx=SerializationContext(
      topic, field="value", headers=None))``.  Input is ONE row dict as produced by the
      deserializer, e.g. ``{"gForceX": 1.2, "gForceY": ..., "gForceZ": ...,
      "Tags": {"vehicle": "car-0"}, "Timestamp": 1700000000000000000}``; output is one
      legacy message holding ONE row (``_as_legacy=True`` is the default).  The 3.x
      serializer cannot write a multi-row message, so "encode one 10-row message" means
      10 serializer calls producing 10 output messages (this is what the `q3` bench peer
      emits).
* ``topic``: the same through ``Topic.row_deserialize(message)`` (adds the "string"
  key deserializer, MessageContext and Row objects) and ``Topic.row_serialize(row, key)``
  (adds the "string" key serializer and header merging), i.e. everything the consumer /
  producer loops do per message except the librdkafka calls.  The Kafka message is a
  small Python stub with the confluent_kafka.Message accessors (that class cannot be
  instantiated from Python).
* ``parse`` (decode only): just ``orjson.loads(value)``, the JSON parse the deserializer
  starts with, as a floor for what the row splitting adds.

Shapes:

* ``10x3+tag``: bench/gen.py's ``make_value()`` (10 rows x gForceX/Y/Z + tag `vehicle`),
  byte-identical to quixstreams 0.5.7 output.  Imported from ../shared/bench/gen.py.
* ``1x50``: 1 row x 50 numeric parameters p0..p49, no tags, built the same way
  gen.py builds its messages (same envelope prefix, value generator, member order,
  repr() floats; empty maps written as ``{}`` as 0.5.7 does).

All counts are per *input message*; per-row figures are also given.  MB = 10^6 bytes.
decode MB/s counts input value bytes; encode MB/s counts the bytes of all output values;
decode+encode MB/s counts input value bytes.  Each measurement: warm-up, then ``--reps``
repetitions of ~``--rep-seconds`` each, run round-robin across measurements (so noise
bursts on a shared machine hit all of them), median reported.  CPU time
(time.process_time) is reported alongside wall time (time.perf_counter), plus the
fastest repetition (min) and the spread ((max-min)/median) as a noise indicator, and the
machine's hypervisor steal share during the run.

Usage:  .venv-q3/bin/python Benchmarks/python/legacy_codec_bench.py [--rep-seconds 0.8]
        [--reps 5] [--levels codec,topic,parse] [--gen PATH/TO/gen.py]
"""
import argparse
import gc
import importlib.util
import itertools
import json
import os
import platform
import statistics
import sys
import time

import orjson
import quixstreams
from quixstreams.models.serializers.base import MessageField, SerializationContext
from quixstreams.models.serializers.quix import QuixDeserializer, QuixTimeseriesSerializer
from quixstreams.models.topics import Topic

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_GEN = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "bench", "gen.py"))


def load_gen(path):
    spec = importlib.util.spec_from_file_location("quix_bench_gen", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- messages

def make_wide_value(gen, s: int, m: int, nparams: int = 50) -> bytes:
    """1 row x `nparams` numeric parameters p0..p{n-1}, laid out exactly like
    gen.make_value() (and therefore like quixstreams 0.5.7) with no tags."""
    ts = gen.BASE_TS + s * 1000 + m * gen.ROW_STEP_NS
    vals = [gen._val(s * 7919 + m * 104729 + j * 130363 + 17) for j in range(nparams)]
    v = (
        '{"Timestamps":[' + str(ts) + ']'
        + ',"NumericValues":{'
        + ",".join('"p%d":[%r]' % (j, x) for j, x in enumerate(vals))
        + '},"StringValues":{},"BinaryValues":{},"TagValues":{}}'
    ).encode()
    start = len(gen.PREFIX)
    return gen.PREFIX + v + b',"S":%d,"E":%d}' % (start, start + len(v))


def expected_rows_10x3(gen, s, m, rows):
    ts, xs, ys, zs, tag = gen.rows_of(s, m, rows)
    return [
        {"gForceX": x, "gForceY": y, "gForceZ": z, "Tags": {"vehicle": tag}, "Timestamp": t}
        for t, x, y, z in zip(ts, xs, ys, zs)
    ]


class StubMessage:
    """The confluent_kafka.Message accessors Topic.row_deserialize uses."""

    __slots__ = ("_topic", "_partition", "_offset", "_key", "_value", "_ts")

    def __init__(self, topic, partition, offset, key, value, ts_ms):
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._ts = key, value, ts_ms

    def topic(self): return self._topic
    def partition(self): return self._partition
    def offset(self): return self._offset
    def key(self): return self._key
    def value(self): return self._value
    def headers(self): return None          # legacy messages carry no headers
    def timestamp(self): return (1, self._ts)  # TIMESTAMP_CREATE_TIME
    def leader_epoch(self): return None
    def __len__(self): return len(self._value)


# --------------------------------------------------------------------------- setup

def build_shapes(gen, pool):
    shapes = {}
    # 10 rows x 3 numeric + 1 tag: `pool` distinct messages over 50 streams
    items = []
    for i in range(pool):
        s, m = i % 50, i // 50
        items.append((gen.stream_id(s).encode(), gen.make_value(s, m, 10), (s, m)))
    shapes["10x3+tag"] = {"rows": 10, "items": items}
    items = []
    for i in range(pool):
        s, m = i % 50, i // 50
        items.append((gen.stream_id(s).encode(), make_wide_value(gen, s, m, 50), (s, m)))
    shapes["1x50"] = {"rows": 1, "items": items}
    return shapes


def check_and_prepare(gen, shapes):
    """Correctness checks + pre-decoded inputs for the encode benchmarks."""
    deser = QuixDeserializer()
    ser = QuixTimeseriesSerializer()
    ctx_in = SerializationContext(topic="in", field=MessageField.VALUE, headers=None)
    ctx_out = SerializationContext(topic="out", field=MessageField.VALUE, headers=None)
    notes = {}
    for name, sh in shapes.items():
        decoded = []
        out_bytes = []
        for key, val, (s, m) in sh["items"]:
            # the value is what gen.py writes: S/E cut out V exactly
            env = json.loads(val)
            assert json.loads(val[env["S"]:env["E"]]) == env["V"], "S/E do not cut V"
            rows = list(deser(value=val, ctx=ctx_in))
            assert len(rows) == sh["rows"], (name, len(rows))
            if name == "10x3+tag":
                assert rows == expected_rows_10x3(gen, s, m, 10), "decode mismatch"
            else:
                assert len(rows[0]) == 50 + 2 and rows[0]["Tags"] == {}
            outs = [ser(value=r, ctx=ctx_out) for r in rows]
            for r, o in zip(rows, outs):
                e = orjson.loads(o)
                assert o[e["S"]:e["E"]] == orjson.dumps(e["V"]), "S/E do not cut V"
                assert list(deser(value=o, ctx=ctx_in)) == [r], "round trip mismatch"
            decoded.append(rows)
            out_bytes.append(sum(len(o) for o in outs))
        sh["decoded"] = decoded
        sh["in_bytes"] = statistics.fmean(len(v) for _, v, _ in sh["items"])
        sh["out_bytes"] = statistics.fmean(out_bytes)
        key, val, _ = sh["items"][0]
        first_out = ser(value=decoded[0][0], ctx=ctx_out)
        notes[name] = {
            "sample_in": val.decode()[:160] + ("..." if len(val) > 160 else ""),
            "sample_out_row0": first_out.decode()[:200] + ("..." if len(first_out) > 200 else ""),
            # 0.5.7 writes a 1-row message with the same content in a different member
            # order (Timestamps, NumericValues, StringValues, BinaryValues, TagValues)
            "out_byte_identical_to_0.5.7": (sh["rows"] == 1 and first_out == val),
        }
    return notes


def make_ops(shapes, levels):
    """Return {(level, shape, op): (callable(n) -> None, shape_name)}."""
    ops = {}
    for name, sh in shapes.items():
        items, decoded = sh["items"], sh["decoded"]
        npool = len(items)
        if "codec" in levels:
            deser = QuixDeserializer()
            ser = QuixTimeseriesSerializer()
            ctx_in = SerializationContext(topic="in", field=MessageField.VALUE, headers=None)
            ctx_out = SerializationContext(topic="out", field=MessageField.VALUE, headers=None)
            values = [v for _, v, _ in items]

            def c_dec(n, values=values, deser=deser, ctx=ctx_in):
                for v in itertools.islice(itertools.cycle(values), n):
                    list(deser(value=v, ctx=ctx))

            def c_enc(n, decoded=decoded, ser=ser, ctx=ctx_out):
                for rows in itertools.islice(itertools.cycle(decoded), n):
                    for r in rows:
                        ser(value=r, ctx=ctx)

            def c_both(n, values=values, deser=deser, ser=ser, ci=ctx_in, co=ctx_out):
                for v in itertools.islice(itertools.cycle(values), n):
                    for r in deser(value=v, ctx=ci):
                        ser(value=r, ctx=co)

            ops[("codec", name, "decode")] = c_dec
            ops[("codec", name, "encode")] = c_enc
            ops[("codec", name, "decode+encode")] = c_both
        if "parse" in levels:
            # floor: only the orjson.loads of the whole value that QuixDeserializer
            # starts with (_parse_legacy_format); no row splitting
            values = [v for _, v, _ in items]
            loads = orjson.loads

            def p_dec(n, values=values, loads=loads):
                for v in itertools.islice(itertools.cycle(values), n):
                    loads(v)

            ops[("parse", name, "decode")] = p_dec
        if "topic" in levels:
            # exactly the topic definitions of bench/peers/q3_app.py
            tin = Topic("in", value_deserializer=QuixDeserializer(), key_deserializer="string")
            tout = Topic("out", value_serializer=QuixTimeseriesSerializer(), key_serializer="string")
            msgs = [StubMessage("in", 0, i, k, v, 1_700_000_000_000) for i, (k, v, _) in enumerate(items)]
            row_lists = [tin.row_deserialize(message=m) for m in msgs]

            def t_dec(n, msgs=msgs, tin=tin):
                for m in itertools.islice(itertools.cycle(msgs), n):
                    tin.row_deserialize(message=m)

            def t_enc(n, row_lists=row_lists, tout=tout):
                for rows in itertools.islice(itertools.cycle(row_lists), n):
                    for row in rows:
                        tout.row_serialize(row=row, key=row.key)

            def t_both(n, msgs=msgs, tin=tin, tout=tout):
                for m in itertools.islice(itertools.cycle(msgs), n):
                    for row in tin.row_deserialize(message=m):
                        tout.row_serialize(row=row, key=row.key)

            ops[("topic", name, "decode")] = t_dec
            ops[("topic", name, "encode")] = t_enc
            ops[("topic", name, "decode+encode")] = t_both
    return ops


def cpu_jiffies():
    """(total, steal) jiffies of the whole machine from /proc/stat, or None."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
        vals = [int(x) for x in parts[1:]]
        return sum(vals[:8]), vals[7]
    except (OSError, ValueError, IndexError):
        return None


def timed(fn, n):
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    fn(n)
    t1, c1 = time.perf_counter(), time.process_time()
    return t1 - t0, c1 - c0


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rep-seconds", type=float, default=0.8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup-seconds", type=float, default=0.4)
    ap.add_argument("--levels", default="codec,topic,parse")
    ap.add_argument("--pool", type=int, default=100, help="distinct messages per shape")
    ap.add_argument("--gen", default=os.environ.get("QUIX_BENCH_GEN", DEFAULT_GEN),
                    help="path of shared/bench/gen.py")
    a = ap.parse_args()
    levels = [x for x in a.levels.split(",") if x]

    gen = load_gen(a.gen)
    shapes = build_shapes(gen, a.pool)
    notes = check_and_prepare(gen, shapes)
    ops = make_ops(shapes, levels)

    env = {
        "quixstreams": quixstreams.__version__,
        "orjson": orjson.__version__,
        "python": platform.python_version(),
        "impl": platform.python_implementation(),
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    print("# env " + json.dumps(env), file=sys.stderr)
    for name, n in notes.items():
        print(f"# {name} in : {n['sample_in']}", file=sys.stderr)
        print(f"# {name} out: {n['sample_out_row0']}", file=sys.stderr)
        print(f"# {name} 3.x output byte-identical to 0.5.7: {n['out_byte_identical_to_0.5.7']}",
              file=sys.stderr)

    # warm-up + calibration: iterations per repetition for ~rep_seconds
    iters = {}
    for k, fn in ops.items():
        n = 64
        spent = 0.0
        done = 0
        while spent < a.warmup_seconds:
            dt, _ = timed(fn, n)
            spent += dt
            done += n
            n *= 2
        rate = done / spent
        iters[k] = max(100, int(rate * a.rep_seconds))

    j0 = cpu_jiffies()
    wall = {k: [] for k in ops}
    cpu = {k: [] for k in ops}
    for _ in range(a.reps):
        for k, fn in ops.items():  # round-robin across measurements
            dt, dc = timed(fn, iters[k])
            wall[k].append(dt / iters[k])
            cpu[k].append(dc / iters[k])

    env["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    j1 = cpu_jiffies()
    if j0 and j1 and j1[0] > j0[0]:
        # hypervisor steal during the measured repetitions, % of all CPU time
        env["steal_pct"] = round(100 * (j1[1] - j0[1]) / (j1[0] - j0[0]), 1)
    results = []
    for k in ops:
        level, shape, op = k
        sh = shapes[shape]
        w = statistics.median(wall[k])
        c = statistics.median(cpu[k])
        nbytes = sh["out_bytes"] if op == "encode" else sh["in_bytes"]
        res = {
            "bench": "q3-legacy-codec",
            "level": level,
            "shape": shape,
            "op": op,
            "msgs_per_s": round(1.0 / w, 1),
            "mb_per_s": round(nbytes / w / 1e6, 3),
            "us_per_msg": round(w * 1e6, 3),
            "min_us_per_msg": round(min(wall[k]) * 1e6, 3),
            "cpu_us_per_msg": round(c * 1e6, 3),
            "rows_per_msg": sh["rows"],
            "us_per_row": round(w * 1e6 / sh["rows"], 3),
            "out_msgs_per_msg": sh["rows"] if op != "decode" else 0,
            "bytes_counted_per_msg": round(nbytes, 1),
            "in_bytes_per_msg": round(sh["in_bytes"], 1),
            "out_bytes_per_msg": round(sh["out_bytes"], 1),
            "iters_per_rep": iters[k],
            "reps_us_per_msg": [round(x * 1e6, 3) for x in wall[k]],
            "spread_pct": round(100 * (max(wall[k]) - min(wall[k])) / w, 1),
            **{kk: env[kk] for kk in ("quixstreams", "orjson", "python")},
        }
        results.append(res)
        print(json.dumps(res), flush=True)

    print("# env_end " + json.dumps(env), file=sys.stderr)
    # readable table
    hdr = ("level", "shape", "op", "msgs/s", "MB/s", "us/msg", "cpu us/msg", "us/row",
           "min us/msg", "spread%")
    fmt = "{:<6} {:<9} {:<14} {:>10} {:>7} {:>9} {:>10} {:>8} {:>10} {:>8}"
    lines = [fmt.format(*hdr)]
    for r in results:
        lines.append(fmt.format(r["level"], r["shape"], r["op"], f"{r['msgs_per_s']:.0f}",
                                f"{r['mb_per_s']:.2f}", f"{r['us_per_msg']:.1f}",
                                f"{r['cpu_us_per_msg']:.1f}", f"{r['us_per_row']:.2f}",
                                f"{r['min_us_per_msg']:.1f}",
                                f"{r['spread_pct']:.0f}"))
    lines.append("msgs = input legacy messages; encode/decode+encode of a 10-row message = "
                 "10 serializer calls -> 10 one-row output messages.")
    lines.append("bytes: in=%s; out per input msg=%s" % (
        {n: round(s["in_bytes"], 1) for n, s in shapes.items()},
        {n: round(s["out_bytes"], 1) for n, s in shapes.items()}))
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
