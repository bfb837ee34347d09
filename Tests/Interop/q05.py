#!/usr/bin/env python3
"""
q05.py - drive the REAL quixstreams 0.5.7 library (the reference implementation that
quixd reimplements) against a Kafka broker, for interop tests.

Run it with the interpreter of .venv-interop (see scripts/setup-interop.sh):

    PY=$(scripts/setup-interop.sh | tail -n1)
    $PY Tests/Interop/q05.py produce --brokers B --topic T --scenario NAME
    $PY Tests/Interop/q05.py consume --brokers B --topic T --group G --timeout 20 [--expect-streams N]
    $PY Tests/Interop/q05.py list                      # scenario names and descriptions

produce  publishes one scenario with the 0.5.7 producer API, closes its streams, flushes
         and disposes the producer (everything is delivered when it exits), then prints one
         JSON line: {"scenario", "topic", "streams": [ids], "seconds"}.
consume  subscribes from the earliest offset with the 0.5.7 consumer and prints one JSON
         object per line for every callback the library fires (format below). It exits 0
         when --expect-streams streams have been closed by a StreamEnd, or when --timeout
         seconds have passed, whichever is first.

Output of consume (keys sorted; one line per callback, in callback order):

    {"kind": "stream_received", "stream": S}
    {"kind": "properties", "stream": S, "name", "location", "metadata": {}, "parents": [],
     "time_of_recording": "YYYY-MM-DDTHH:MM:SS[.ffffff][+00:00]" | null}
    {"kind": "parameter_definitions", "stream": S, "definitions": [{"id", "name",
     "description", "location", "minimum_value", "maximum_value", "unit", "format",
     "custom_properties"}, ...]}                        # sorted by (location, id)
    {"kind": "event_definitions", "stream": S, "definitions": [{"id", "name",
     "description", "location", "level", "custom_properties"}, ...]}
    {"kind": "timeseries", "stream": S, "rows": [{"timestamp": ns, "numeric": {},
     "string": {}, "binary": {name: base64}, "tags": {}}, ...]}   # one line per packet
    {"kind": "event", "stream": S, "id", "timestamp": ns, "value", "tags": {}}
    {"kind": "closed", "stream": S, "end_type": "Closed" | "Aborted" | "Terminated"}
    {"kind": "error", "stream": S, "callback": name, "error": text}   # a handler raised

A timeseries row lists only the values present on it (null cells are left out). Missing
properties fields are null; the root location of a definition is "".

Non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity" (as on the
wire). Streams still open when consume stops are closed by the library as "Terminated"
during dispose; those closes are NOT printed (they did not come from the topic).

The library's own log lines (the .NET core writes them to file descriptor 1) are sent
to stderr, so stdout carries only the JSON lines.
"""
import argparse
import base64
import datetime
import json
import math
import os
import sys
import threading
import time

BASE_NS = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z, ns since the Unix epoch
MS = 1_000_000                       # one millisecond in ns
LARGE_SIZE = 3_000_000               # bytes of the "large" scenario's binary value


def large_value() -> bytes:
    """The deterministic 3 MB value of the "large" scenario (same as the golden vectors)."""
    return bytes(i % 251 for i in range(LARGE_SIZE))


# ----------------------------------------------------------------------------------------
# Producer scenarios. Each takes a TopicProducer and returns the streams it wrote (in
# order). Every stream is closed by the scenario; main() flushes and disposes afterwards.
# ----------------------------------------------------------------------------------------

def sc_properties(qx, tp):
    """Stream properties: every field set and flushed, then a rename (second message,
    which replaces the whole set on the consumer); and a stream that never sets any."""
    s = tp.create_stream("properties-full")
    p = s.properties
    p.name = "Full properties"
    p.location = "/vehicles/car-1"
    p.metadata["driver"] = "Alice"
    p.metadata["lap"] = "3"
    p.metadata["unicode"] = "\u00e9\u4e2d"
    p.parents.append("parent-1")
    p.parents.append("parent-2")
    p.time_of_recording = datetime.datetime(2023, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    p.flush()
    p.name = "Full properties (renamed)"
    p.flush()
    s.close()
    empty = tp.create_stream("properties-empty")   # closed without anything set
    empty.close()
    return ["properties-full", "properties-empty"]


def sc_definitions(qx, tp):
    """Parameter definitions (range, unit, format, description, custom properties, nested
    location groups) and event definitions (every level, location groups)."""
    sid = "definitions-1"
    s = tp.create_stream(sid)
    ts = s.timeseries
    ts.add_definition("speed", "Speed", "Vehicle speed") \
        .set_range(0, 400).set_unit("km/h").set_format("{0:0.0}").set_custom_properties('{"c":1}')
    ts.add_definition("label")                                   # id only
    ts.add_location("/chassis/engine") \
        .add_definition("rpm", "RPM").set_range(0, 20000) \
        .add_definition("gear", "Gear", "Selected gear").set_range(-1, 8)
    ts.add_location("/chassis/brakes").add_definition("brake_temp", "Brake temperature").set_unit("C")
    ts.flush()
    ev = s.events
    ev.add_definition("crash", "Crash", "A crash happened") \
        .set_level(qx.EventLevel.Critical).set_custom_properties('{"x":2}')
    ev.add_definition("trace_evt").set_level(qx.EventLevel.Trace)   # Trace is not written (default)
    ev.add_definition("debug_evt").set_level(qx.EventLevel.Debug)
    ev.add_definition("warn_evt", "Warn").set_level(qx.EventLevel.Warning)
    ev.add_location("/race") \
        .add_definition("lap_start", "Lap start").set_level(qx.EventLevel.Information) \
        .add_definition("dnf", "Did not finish", "Retired").set_level(qx.EventLevel.Error)
    ev.flush()
    s.close()
    return [sid]


def sc_timeseries(qx, tp):
    """Unbuffered TimeseriesData packets: numeric, string and binary values and tags on
    several timestamps, with sparse columns (a value missing on some rows)."""
    sid = "timeseries-1"
    s = tp.create_stream(sid)
    d = qx.TimeseriesData()
    d.add_timestamp_nanoseconds(BASE_NS) \
        .add_value("speed", 123.5).add_value("rpm", 9000).add_value("label", "hello \u00e9\u4e2d") \
        .add_value("blob", bytes([0, 1, 2, 250, 255])).add_tag("driver", "Alice").add_tag("team", "red")
    d.add_timestamp_nanoseconds(BASE_NS + 1 * MS) \
        .add_value("speed", -0.25).add_value("label", "").add_tag("driver", "Alice")
    d.add_timestamp_nanoseconds(BASE_NS + 2 * MS) \
        .add_value("speed", 1e300).add_value("blob", b"\x00").add_value("rpm", 0)
    s.timeseries.publish(d)
    d2 = qx.TimeseriesData()
    for i in range(5):
        d2.add_timestamp_nanoseconds(BASE_NS + (10 + i) * MS) \
            .add_value("speed", 100.0 + i).add_value("label", "row-%d" % i) \
            .add_value("blob", bytes([i] * (i + 1))).add_tag("lap", str(i))
    s.timeseries.publish(d2)
    s.close()
    return [sid]


def sc_buffered(qx, tp):
    """Publishing through the stream's time-series buffer: packet_size=3 (7 rows -> 3,3,1,
    the last released at close) and time_span_in_milliseconds=100 on data timestamps
    (rows at +0,30,60,100,130,250,260 ms -> [0,30,60] [100,130] [250,260])."""
    a = tp.create_stream("buffered-packet")
    a.timeseries.buffer.packet_size = 3
    for i in range(7):
        a.timeseries.buffer.add_timestamp_nanoseconds(BASE_NS + i * 10 * MS) \
            .add_value("v", float(i)).add_value("s", "r%d" % i).add_tag("row", str(i)).publish()
    a.close()
    b = tp.create_stream("buffered-span")
    b.timeseries.buffer.time_span_in_milliseconds = 100
    for off in (0, 30, 60, 100, 130, 250, 260):
        b.timeseries.buffer.add_timestamp_nanoseconds(BASE_NS + off * MS).add_value("v", float(off)).publish()
    b.close()
    return ["buffered-packet", "buffered-span"]


def sc_events(qx, tp):
    """Events: a single value, a builder with two values and tags (one message holding two
    events), an EventData object with tags and a JSON-in-a-string value."""
    sid = "events-1"
    s = tp.create_stream(sid)
    s.events.add_timestamp_nanoseconds(BASE_NS).add_value("door", "open").publish()
    s.events.add_timestamp_nanoseconds(BASE_NS + 1 * MS) \
        .add_value("door", "closed").add_value("horn", "beep").add_tag("who", "bob").add_tag("seat", "1").publish()
    e = qx.EventData("note", BASE_NS + 2 * MS, '{"json": true, "text": "\u00e9"}')
    e.add_tag("k", "v")
    s.events.publish(e)
    s.close()
    return [sid]


def sc_interleaved(qx, tp):
    """Three streams written alternately (3 rounds of one row and one event per stream),
    then closed in order A, B, C."""
    ids = ["interleaved-A", "interleaved-B", "interleaved-C"]
    streams = [tp.create_stream(sid) for sid in ids]
    for r in range(3):
        for i, s in enumerate(streams):
            s.timeseries.buffer.add_timestamp_nanoseconds(BASE_NS + r * MS) \
                .add_value("v", float(10 * i + r)).add_tag("round", str(r)).publish()
            s.events.add_timestamp_nanoseconds(BASE_NS + r * MS).add_value("tick", "%d/%d" % (i, r)).publish()
    for s in streams:
        s.close()
    return ids


def sc_close(qx, tp):
    """One stream per end type: close(Closed), close(Aborted), close(Terminated), each
    after one row."""
    ids = []
    for name, end in (("closed", qx.StreamEndType.Closed), ("aborted", qx.StreamEndType.Aborted),
                      ("terminated", qx.StreamEndType.Terminated)):
        s = tp.create_stream("close-" + name)
        s.timeseries.buffer.add_timestamp_nanoseconds(BASE_NS).add_value("v", 1.0).publish()
        s.close(end)
        ids.append("close-" + name)
    return ids


def sc_large(qx, tp):
    """A 3,000,000-byte binary value (bytes i % 251) in one row, between two small rows. Its
    ~4 MB JSON package is split by 0.5.7 into 5 Kafka messages of <= 998,988 bytes."""
    sid = "large-1"
    s = tp.create_stream(sid)
    s.timeseries.buffer.add_timestamp_nanoseconds(BASE_NS).add_value("small", 1.0).publish()
    d = qx.TimeseriesData()
    d.add_timestamp_nanoseconds(BASE_NS + 1 * MS).add_value("big", large_value())
    s.timeseries.publish(d)
    s.timeseries.buffer.add_timestamp_nanoseconds(BASE_NS + 2 * MS).add_value("small", 2.0).publish()
    s.close()
    return [sid]


SCENARIOS = {name[3:]: fn for name, fn in globals().items() if name.startswith("sc_")}


# ----------------------------------------------------------------------------------------
# Output plumbing
# ----------------------------------------------------------------------------------------

class JsonOut:
    """Writes sorted-key JSON lines to the real stdout, thread-safely. Created before
    quixstreams is imported: fd 1 is then pointed at stderr, so whatever the native
    library prints cannot interleave with the JSON."""

    def __init__(self):
        sys.stdout.flush()
        self._f = os.fdopen(os.dup(1), "w", encoding="utf-8")
        os.dup2(2, 1)
        self._lock = threading.Lock()

    def write(self, obj):
        line = json.dumps(_finite(obj), sort_keys=True, ensure_ascii=False, allow_nan=False)
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()


def _finite(v):
    """Replace non-finite floats by their wire spelling, recursively."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _b64(b) -> str:
    return base64.b64encode(bytes(b)).decode("ascii")


# ----------------------------------------------------------------------------------------
# Subcommands
# ----------------------------------------------------------------------------------------

def watchdog(seconds, what):
    """Exit with status 3 if still running after `seconds`: the 0.5.7 producer retries an
    unreachable broker for minutes (librdkafka's message.timeout.ms is 300 s), and a test
    should fail fast instead."""
    def fire():
        print("q05 %s: still running after %.0f s, giving up" % (what, seconds), file=sys.stderr, flush=True)
        os._exit(3)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def cmd_produce(args, out):
    watchdog(args.deadline, "produce")
    import quixstreams as qx
    qx.Logging.update_factory(qx.LogLevel.Warning)
    started = time.monotonic()
    client = qx.KafkaStreamingClient(args.brokers)
    tp = client.get_topic_producer(args.topic)
    streams = SCENARIOS[args.scenario](qx, tp)
    tp.flush()      # flush + dispose: on return every message has reached the broker
    tp.dispose()
    out.write({"scenario": args.scenario, "topic": args.topic, "streams": streams,
               "seconds": round(time.monotonic() - started, 3)})
    return 0


def cmd_consume(args, out):
    watchdog(args.timeout + 20, "consume")   # subscribe/dispose should never take that long
    import quixstreams as qx
    from quixstreams.models.parametervalue import ParameterValueType
    qx.Logging.update_factory(qx.LogLevel.Warning)

    done = threading.Event()   # set when enough streams closed
    stopping = threading.Event()  # set once we stop reporting (dispose closes live streams)
    closed_count = [0]
    lock = threading.Lock()

    def emit(sc, kind, **fields):
        if not stopping.is_set():
            out.write(dict(fields, stream=sc.stream_id, kind=kind))

    def reported(handler):
        """Wrap a callback so that an exception in it becomes an "error" line on stdout
        (the library would only print a traceback to the console and go on)."""
        def wrapper(sc, *a):
            try:
                handler(sc, *a)
            except Exception as ex:  # noqa: BLE001 - report anything
                emit(sc, "error", callback=handler.__name__, error="%s: %s" % (type(ex).__name__, ex))
        return wrapper

    def on_properties(sc):
        p = sc.properties
        tor = p.time_of_recording
        emit(sc, "properties", name=p.name, location=p.location, metadata=dict(p.metadata),
             parents=list(p.parents), time_of_recording=None if tor is None else tor.isoformat())

    def on_parameter_definitions(sc):
        defs = [{"id": d.id, "name": d.name, "description": d.description, "location": d.location,
                 "minimum_value": d.minimum_value, "maximum_value": d.maximum_value,
                 "unit": d.unit, "format": d.format, "custom_properties": d.custom_properties}
                for d in sc.timeseries.definitions]
        emit(sc, "parameter_definitions", definitions=sorted(defs, key=lambda d: (d["location"] or "", d["id"])))

    def on_event_definitions(sc):
        defs = [{"id": d.id, "name": d.name, "description": d.description, "location": d.location,
                 "level": d.level.name, "custom_properties": d.custom_properties}
                for d in sc.events.definitions]
        emit(sc, "event_definitions", definitions=sorted(defs, key=lambda d: (d["location"] or "", d["id"])))

    def on_timeseries(sc, data):
        rows = []
        for ts in data.timestamps:
            row = {"timestamp": ts.timestamp_nanoseconds, "numeric": {}, "string": {}, "binary": {},
                   "tags": dict(ts.tags)}
            # A packet is columnar: a parameter missing on this row is still listed, typed
            # by its column, with the value None (a null cell). Leave those out. (Use the
            # typed accessors: ParameterValue.value raises for a null binary cell.)
            for pid, pv in ts.parameters.items():
                if pv.type == ParameterValueType.Numeric and pv.numeric_value is not None:
                    row["numeric"][pid] = pv.numeric_value
                elif pv.type == ParameterValueType.String and pv.string_value is not None:
                    row["string"][pid] = pv.string_value
                elif pv.type == ParameterValueType.Binary and pv.binary_value is not None:
                    row["binary"][pid] = _b64(pv.binary_value)
            rows.append(row)
        emit(sc, "timeseries", rows=rows)

    def on_event(sc, e):
        emit(sc, "event", id=e.id, timestamp=e.timestamp_nanoseconds, value=e.value, tags=dict(e.tags))

    def on_closed(sc, end_type):
        emit(sc, "closed", end_type=end_type.name)
        with lock:
            closed_count[0] += 1
            if args.expect_streams and closed_count[0] >= args.expect_streams:
                done.set()

    def on_stream_received(sc):
        # Handlers must be attached here: the first package of the stream is dispatched
        # right after this callback returns.
        emit(sc, "stream_received")
        sc.properties.on_changed = reported(on_properties)
        sc.timeseries.on_definitions_changed = reported(on_parameter_definitions)
        sc.events.on_definitions_changed = reported(on_event_definitions)
        sc.timeseries.on_data_received = reported(on_timeseries)
        sc.events.on_data_received = reported(on_event)
        sc.on_stream_closed = reported(on_closed)

    client = qx.KafkaStreamingClient(args.brokers)
    tc = client.get_topic_consumer(args.topic, consumer_group=args.group,
                                   auto_offset_reset=qx.AutoOffsetReset.Earliest)
    tc.on_stream_received = on_stream_received
    tc.subscribe()
    done.wait(args.timeout)
    stopping.set()
    tc.dispose()
    print("q05 consume: %d stream(s) closed%s" % (closed_count[0], "" if done.is_set() else " (timeout)"),
          file=sys.stderr)
    return 0


def cmd_list(args, out):
    for name, fn in SCENARIOS.items():
        out.write({"scenario": name, "doc": " ".join(fn.__doc__.split())})
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce", help="publish one scenario with the 0.5.7 producer")
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    p.add_argument("--deadline", type=float, default=45,
                   help="exit with status 3 if not done after this many seconds (default 45)")
    c = sub.add_parser("consume", help="print what the 0.5.7 consumer receives, as JSON lines")
    c.add_argument("--brokers", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--group", required=True)
    c.add_argument("--timeout", type=float, required=True, help="seconds to consume at most")
    c.add_argument("--expect-streams", type=int, default=0,
                   help="stop once this many streams were closed by a StreamEnd")
    sub.add_parser("list", help="print the scenarios")
    args = ap.parse_args(argv)

    out = JsonOut()
    rc = {"produce": cmd_produce, "consume": cmd_consume, "list": cmd_list}[args.cmd](args, out)
    # The .NET core keeps background threads alive; leave without waiting for them.
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    main(sys.argv[1:])
