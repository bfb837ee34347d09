"""The consumer-acceptance cases: hand-built Kafka messages (well-formed, odd and broken) that
are fed to the real quixstreams 0.5.7 consumer, which records what it makes of each.

CASES maps a case name (cNN-what) to (key, [values]): the key None for a message without one.
"""
import base64
import json
import struct

BASE = 1_700_000_000_000_000_000
PD_ONE_ROW = '{"Timestamps":[%d],"NumericValues":{"x":[1.5]},"StringValues":{},"BinaryValues":{},"TagValues":{}}' % BASE


def envelope(model, value, codec="JT", meta=None, start=None, end=None):
    """The JSON envelope; S and E are the offsets of V's value unless given."""
    head = '{"C":"%s","K":"%s",' % (codec, model)
    if meta is not None:
        head += '"M":%s,' % meta
    head += '"V":'
    s = len(head.encode()) if start is None else start
    e = len(head.encode()) + len(value.encode()) if end is None else end
    return (head + value + ',"S":%d,"E":%d}' % (s, e)).encode()


def split_parts(message, message_id, size):
    """A message split as the 0.5 library splits it: <id/index/last> headers and size-byte parts."""
    chunks = [message[i:i + size] for i in range(0, len(message), size)]
    last = len(chunks) - 1
    return [b"<" + struct.pack("<I", message_id) + b"/" + bytes([i]) + b"/" + bytes([last]) + b">" + c for i, c in enumerate(chunks)]


def _long_string_message():
    value = '{"Timestamps":[%d],"NumericValues":{},"StringValues":{"s":["%s"]},"BinaryValues":{},"TagValues":{}}' % (BASE, "z" * 3000)
    return envelope("ParameterData", value)


def _binary_envelope(codec, model, payload):
    """The binary envelope: version 1, codec and model key with their lengths, no metadata,
    then the payload with its length (little-endian)."""
    return (b"\x01" + bytes([len(codec)]) + codec.encode() + bytes([len(model)]) + model.encode()
            + b"\x01\x00\x00\x00\x00" + struct.pack("<I", len(payload)) + payload)


_long = _long_string_message()
_standard = envelope("ParameterData", PD_ONE_ROW)

CASES = {
    "c01-minimal-no-SE": ("c01", [b'{"C":"JT","K":"ParameterData","V":' + PD_ONE_ROW.encode() + b"}"]),
    "c02-standard-json-envelope": ("c02", [_standard]),
    "c03-numeric-only-pd": ("c03", [envelope("ParameterData", '{"Timestamps":[%d,%d],"NumericValues":{"x":[1.0,null]}}' % (BASE, BASE + 1_000_000))]),
    "c04-alias-TimeseriesData": ("c04", [envelope("TimeseriesData", PD_ONE_ROW)]),
    "c05-unknown-model-key": ("c05", [envelope("Foo", '{"a":1}')]),
    "c06-unknown-codec": ("c06", [envelope("ParameterData", PD_ONE_ROW, codec="ZZ")]),
    "c07-garbage-bytes": ("c07", [b"hello world, not quix"]),
    "c08-empty-value": ("c08", [b""]),
    "c09-binary-envelope-JT": ("c09", [_binary_envelope("JT", "ParameterData", PD_ONE_ROW.encode())]),
    "c10-protobuf-in-json-envelope": ("c10", [envelope("ParameterData", '"EgmAgKix45/nyxcaEAoBeBIBABoIAAAAAAAABEA="', codec="PB-Pd")]),
    "c11-split-3-parts": ("c11", split_parts(_long, 77, 1090)),
    "c12-split-missing-middle": ("c12", [split_parts(_long, 78, 1090)[0], split_parts(_long, 78, 1090)[2], _standard]),
    "c13-streamend-string-enum": ("c13", [envelope("StreamEnd", '{"StreamEndType":"Aborted"}')]),
    "c14-streamend-numeric-enum": ("c14", [envelope("StreamEnd", '{"StreamEndType":2}')]),
    "c15-bad-model-json": ("c15", [envelope("ParameterData", '{"Timestamps":"notalist"}')]),
    "c16-event-missing-tags": ("c16", [envelope("EventData[]", '[{"Timestamp":%d,"Id":"e1","Value":"v1"}]' % BASE)]),
    "c17-length-mismatch": ("c17", [envelope("ParameterData", '{"Timestamps":[1,2,3],"NumericValues":{"x":[1.0]}}')]),
    "c18-key-with-slash": ("c18/a\\b", [_standard]),
    "c19-base64-V": ("c19", [envelope("StreamProperties", '"%s"' % base64.b64encode(b' {"Name":"b64"}').decode())]),
    "c20-keepalive-key": ("___KA___", [_standard]),
    "c21-nan-string-and-literal": ("c21", [envelope("ParameterData", '{"Timestamps":[1,2],"NumericValues":{"x":["NaN",NaN]}}')]),
    "c22-EventData-no-brackets": ("c22", [envelope("EventData", '{"Timestamp":1,"Id":"e","Value":"v"}')]),
    "c23-envelope-with-M": ("c23", [envelope("ParameterData", PD_ONE_ROW, meta='{"meta1":"v1"}')]),
    "c24-compact-json-codec": ("c24", [envelope("ParameterData", '{"Numerics":{"x":[0,[1.0,1.0]]},"Timestamps":[%d,1000]}' % BASE, codec="JT-PaDa-1")]),
    "c25-data-after-streamend": ("c25", [_standard, envelope("StreamEnd", "{}"), _standard]),
    "c26-wrong-S-E": ("c26", [envelope("ParameterData", PD_ONE_ROW, start=33)]),
    "c27-codec-J": ("c27", [envelope("ParameterData", PD_ONE_ROW, codec="J")]),
    "c28-no-key": (None, [_standard]),
    "c29-pascal-case-required": ("c29", [envelope("ParameterData", '{"timestamps":[1],"numericValues":{"x":[3.0]}}')]),
    "c30-epoch-field": ("c30", [envelope("ParameterData", '{"Epoch":1000,"Timestamps":[1],"NumericValues":{"x":[3.0]}}')]),
}


def record_consumer(qx, client, topic, group, wait_seconds):
    """Subscribes the real consumer to topic and records every callback, per stream, in order:
    [n, callback, what it got]. Returns the recording after wait_seconds."""
    calls = {}
    counter = [0]

    def note(stream_id, name, payload):
        counter[0] += 1
        calls.setdefault(stream_id, []).append([counter[0], name, payload])

    def on_stream(stream):
        sid = stream.stream_id
        note(sid, "on_stream_received", None)

        def raw(_, data):
            note(sid, "timeseries.on_raw_received", {
                "epoch": data.epoch, "timestamps": list(data.timestamps),
                "numeric": {k: list(v) for k, v in data.numeric_values.items()},
                "string": {k: list(v) for k, v in data.string_values.items()},
                "binary": {k: [None if b is None else base64.b64encode(bytes(b)).decode() for b in v] for k, v in data.binary_values.items()},
                "tags": {k: list(v) for k, v in data.tag_values.items()}})

        def event(_, data):
            note(sid, "events.on_data_received", {"id": data.id, "value": data.value, "tags": dict(data.tags), "ts": data.timestamp_nanoseconds})

        def properties(s):
            p = s.properties
            note(sid, "properties.on_changed", {"name": p.name, "location": p.location, "metadata": dict(p.metadata),
                                                "parents": list(p.parents), "time_of_recording": str(p.time_of_recording)})

        def closed(_, end_type):
            note(sid, "on_stream_closed", str(end_type))

        stream.timeseries.on_raw_received = raw
        stream.events.on_data_received = event
        stream.properties.on_changed = properties
        stream.on_stream_closed = closed

    consumer = client.get_topic_consumer(topic, group, auto_offset_reset=qx.AutoOffsetReset.Earliest)
    consumer.on_stream_received = on_stream
    consumer.subscribe()
    import time
    time.sleep(wait_seconds)
    consumer.dispose()
    return calls


def dumps(recording):
    """The acceptance file's text: indented one space, NaN as in Python's json (read as JSON5)."""
    return json.dumps(recording, indent=1, ensure_ascii=False) + "\n"
