"""The golden-vector scenarios: what the real quixstreams 0.5.7 is made to write, one topic each.

Each scenario runs in a process of its own (the codec setting of quixstreams is process-wide);
Tests/Fixtures/vectors/README.md describes what each one writes. Data timestamps are fixed
(BASE = 2023-11-14T22:13:20Z in ns), so the bytes written are the same on every run.
"""
import datetime
import time

BASE = 1_700_000_000_000_000_000
MS = 1_000_000
UTC = datetime.timezone.utc


def _stream(qx, client, topic, stream_id):
    producer = client.get_topic_producer(topic)
    return producer, producer.create_stream(stream_id)


def _done(producer, *streams):
    """Each stream's StreamEnd, then everything flushed and the producer disposed."""
    for stream in streams:
        stream.close()
    producer.flush()
    producer.dispose()


def _row(buffer, ns, **values):
    builder = buffer.add_timestamp_nanoseconds(ns)
    for name, value in values.items():
        builder = builder.add_value(name, value)
    return builder


def basic(qx, client, topic):
    producer, s = _stream(qx, client, topic, "stream-basic")
    props = s.properties
    props.name = "Basic stream"
    props.location = "/vehicles/car-1"
    props.metadata["driver"] = "Alice"
    props.metadata["lap"] = "3"
    props.parents.append("parent-stream-1")
    props.time_of_recording = datetime.datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    props.flush()
    ts = s.timeseries
    ts.add_definition("speed", "Speed", "Vehicle speed").set_range(0, 400).set_unit("km/h").set_format("{0:0.0}").set_custom_properties('{"c":1}')
    ts.add_location("/chassis/engine").add_definition("rpm", "RPM").set_range(0, 20000).add_definition("gear")
    ts.add_definition("label")
    ev = s.events
    ev.add_definition("crash", "Crash", "A crash happened").set_level(qx.EventLevel.Critical).set_custom_properties('{"x":2}')
    ev.add_location("/race").add_definition("lap_start", "Lap start").set_level(qx.EventLevel.Information)
    ev.add_definition("trace_evt").set_level(qx.EventLevel.Trace)
    ts.flush()
    ev.flush()
    data = qx.TimeseriesData()
    row = _row(data, BASE, speed=123.5, rpm=9000, label="hello \u00e9\u4e2d", blob=bytes([0, 1, 2, 250, 255]))
    row.add_tag("driver", "Alice").add_tag("team", "red")
    ts.publish(data)
    ts.flush()
    time.sleep(0.2)
    props.name = "Basic stream (renamed)"
    props.flush()
    _done(producer, s)


def timeseries_variants(qx, client, topic):
    producer, s = _stream(qx, client, topic, "stream-variants")
    data = qx.TimeseriesData()
    _row(data, BASE, a=1, s="x")
    _row(data, BASE + MS, a=2.25)
    _row(data, BASE + MS, b=7.0)  # the same timestamp: the library merges the rows
    data.add_timestamp_nanoseconds(BASE + 2 * MS).add_tag("only", "tag")  # no values: dropped
    _row(data, BASE + 3 * MS, s="", a=float("nan"))
    _row(data, BASE + 4 * MS, a=float("inf"), b=float("-inf"))
    s.timeseries.publish(data)
    s.timeseries.flush()
    raw = qx.TimeseriesDataRaw()
    raw.set_values(
        epoch=BASE, timestamps=[0, 5 * MS, 10 * MS], numeric_values={"n": [1.0, None, 3.0]},
        string_values={"t": ["p", "q", None]}, binary_values={"bin": [b"\x01\x02", None, b""]},
        tag_values={"tg": ["A", "A", None]})
    s.timeseries.publish(raw)
    s.timeseries.flush()
    epoch = producer.create_stream("stream-epoch")
    epoch.epoch = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    relative = qx.TimeseriesData()
    _row(relative, MS, a=1.0)
    epoch.timeseries.publish(relative)
    _row(epoch.timeseries.buffer, 2 * MS, a=2.0).publish()
    epoch.timeseries.buffer.flush()
    _done(producer, s, epoch)


def buffer_packet_size(qx, client, topic):
    producer, s = _stream(qx, client, topic, "stream-packet")
    buffer = s.timeseries.buffer
    buffer.packet_size = 3
    for i in range(7):
        _row(buffer, BASE + i * 10 * MS, v=float(i)).add_tag("row", str(i)).publish()
    _done(producer, s)


def buffer_time_span(qx, client, topic):
    producer, s = _stream(qx, client, topic, "stream-span")
    buffer = s.timeseries.buffer
    buffer.time_span_in_milliseconds = 100
    for offset in (0, 30, 60, 100, 130, 250, 260):
        _row(buffer, BASE + offset * MS, v=float(offset)).publish()
    _done(producer, s)


def buffer_timeout(qx, client, topic):
    producer, s = _stream(qx, client, topic, "stream-timeout")
    buffer = s.timeseries.buffer
    buffer.buffer_timeout = 300
    _row(buffer, BASE, v=1.0).publish()
    _row(buffer, BASE + MS, v=2.0).publish()
    time.sleep(1.0)  # the timer releases the first two rows
    _row(buffer, BASE + 2 * MS, v=3.0).publish()
    _done(producer, s)


def buffer_default(qx, client, topic):
    producer, s = _stream(qx, client, topic, "stream-bufdefault")
    buffer = s.timeseries.buffer
    buffer.default_tags["source"] = "buf"
    _row(buffer, BASE, v=1.0).publish()
    _row(buffer, BASE + MS, v=2.0).add_tag("source", "override").publish()
    _done(producer, s)


def events(qx, client, topic):
    producer, s = _stream(qx, client, topic, "stream-events")
    s.events.add_definition("door", "Door", "Door state").set_level(qx.EventLevel.Warning)
    s.events.flush()
    s.events.add_timestamp_nanoseconds(BASE).add_value("door", "open").publish()
    s.events.add_timestamp_nanoseconds(BASE + MS).add_value("door", "closed").add_value("horn", "beep").add_tag("who", "bob").publish()
    note = qx.EventData("note", BASE + 2 * MS, '{"json": true}')
    note.add_tag("k", "v")
    s.events.publish(note)
    _done(producer, s)


def multi_stream(qx, client, topic):
    producer = client.get_topic_producer(topic)
    streams = [producer.create_stream("stream-" + name) for name in "ABC"]
    for round_ in range(3):
        for index, s in enumerate(streams):
            _row(s.timeseries.buffer, BASE + round_ * MS, v=float(10 * index + round_)).publish()
    _done(producer, *streams)


def close_types(qx, client, topic):
    producer = client.get_topic_producer(topic)
    for name, end in (("closed", qx.StreamEndType.Closed), ("aborted", qx.StreamEndType.Aborted),
                      ("terminated", qx.StreamEndType.Terminated)):
        s = producer.create_stream("stream-" + name)
        _row(s.timeseries.buffer, BASE, v=1.0).publish()
        s.close(end)
    open_one = producer.create_stream("stream-notclosed")
    _row(open_one.timeseries.buffer, BASE, v=1.0).publish()
    _done(producer)  # disposed without closing stream-notclosed: no StreamEnd


def split(qx, client, topic):
    producer, s = _stream(qx, client, topic, "stream-split")
    _row(s.timeseries.buffer, BASE, small=1.0).publish()
    big = qx.TimeseriesData()
    _row(big, BASE + MS, big=bytes(i % 251 for i in range(3_000_000)))
    s.timeseries.publish(big)
    _row(s.timeseries.buffer, BASE + 2 * MS, small=2.0).publish()
    _done(producer, s)


def _codecs(codec):
    def scenario(qx, client, topic):
        qx.CodecSettings.set_global_codec_type(getattr(qx.CodecType, codec))
        producer, s = _stream(qx, client, topic, "stream-" + topic[len("qv-"):])
        s.properties.name = "codec test"
        s.timeseries.add_definition("a").set_unit("u")
        s.timeseries.flush()
        data = qx.TimeseriesData()
        _row(data, BASE, a=1.5, s="x", b=b"\x00\xff").add_tag("t", "T1")
        _row(data, BASE + MS, a=2.5, s="x").add_tag("t", "T2")
        _row(data, BASE + 5 * MS, s="y")
        _row(data, BASE + 6 * MS, a=2.0)
        s.timeseries.publish(data)
        s.events.add_timestamp_nanoseconds(BASE).add_value("e", "v").publish()
        _done(producer, s)
    return scenario


SCENARIOS = {
    "basic": basic, "timeseries_variants": timeseries_variants, "buffer_packet_size": buffer_packet_size,
    "buffer_time_span": buffer_time_span, "buffer_timeout": buffer_timeout, "buffer_default": buffer_default,
    "events": events, "multi_stream": multi_stream, "close_types": close_types, "split": split,
    "codec_json_explicit": _codecs("Json"), "codec_compact_json": _codecs("CompactJsonForBetterPerformance"),
    "codec_protobuf": _codecs("Protobuf"),
}
