#!/usr/bin/env python3
"""Makes the golden vectors of Tests/Fixtures/vectors with the real quixstreams 0.5.7.

Run by scripts/make-vectors.sh, with the interop venv's python (quixstreams==0.5.7, numpy<2),
BROKERS set to a Kafka (a `quixd broker`) and kcat on PATH:

  make_vectors.py write DIR [scenarios|acceptance]
                                   every scenario into topic qv-NAME, captured byte for byte
                                   with kcat into DIR/NAME.jsonl; then every consumer-acceptance
                                   case fed to the real consumer, into DIR/consumer_acceptance.json
  make_vectors.py compare DIR REF  the deterministic content of DIR against REF (another vector
                                   directory, e.g. the first set the vectors came from)

A capture line holds what the bytes are and nothing else, so a run writes the same file each
time: {"scenario","topic","partition","offset","key_b64","value_b64","headers"}. The broker's
timestamps are left out (they change every run). The acceptance file records, per case, the key
and values sent and what the consumer made of them; its event timestamps of raw messages and
its log lines' clock are the broker's and the run's, so `compare` leaves those out.
"""
import base64
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import acceptance  # noqa: E402
import scenarios  # noqa: E402

LOG_LINE = re.compile(r"^\[\d\d-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \(\d+\) (ERR|WRN)\] ")
COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # the library's console log is coloured


def b64(data):
    return None if data is None else base64.b64encode(data).decode("ascii")


def kcat(*args):
    return subprocess.run(["kcat", "-b", os.environ["BROKERS"], *args], capture_output=True, check=True).stdout


def capture(topic):
    """Every message of topic, in (partition, offset) order, read with kcat: a header line
    'partition offset key-length value-length header-count', then the raw key and value."""
    raw = kcat("-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", r"%p %o %K %S %h\n%k%s")
    records, at = [], 0
    while at < len(raw):
        end = raw.index(b"\n", at)
        fields = raw[at:end].decode().split(" ")
        partition, offset, key_length, value_length = (int(f) for f in fields[:4])
        if len(fields) > 4 and fields[4]:
            raise SystemExit("%s[%d]@%d has headers; the capture keeps none" % (topic, partition, offset))
        at = end + 1
        key = raw[at:at + max(key_length, 0)] if key_length >= 0 else None
        at += max(key_length, 0)
        value = raw[at:at + max(value_length, 0)] if value_length >= 0 else None
        at += max(value_length, 0)
        records.append((partition, offset, key, value))
    return sorted(records, key=lambda r: (r[0], r[1]))


def child(kind, name, topic):
    """Runs in its own process: a scenario, or the recording consumer of a case."""
    import quixstreams as qx
    client = qx.KafkaStreamingClient(os.environ["BROKERS"])
    if kind == "scenario":
        scenarios.SCENARIOS[name](qx, client, topic)
    else:
        # The case's messages as they are (the raw producer adds nothing: no headers), in order.
        key, values = acceptance.CASES[name]
        producer = client.get_raw_topic_producer(topic)
        for value in values:
            message = qx.RawMessage(value)
            if key is not None:
                message.key = key.encode()
            producer.publish(message)
        producer.flush()
        producer.dispose()
        calls = acceptance.record_consumer(qx, client, topic, "acceptance-" + name, float(os.environ.get("WAIT", "8")))
        print("RECORDING " + json.dumps(calls), flush=True)


def run_child(kind, name, topic):
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "child", kind, name, topic],
                            capture_output=True, text=True, timeout=180)
    return result


def write(directory, parts):
    os.makedirs(directory, exist_ok=True)
    if "scenarios" in parts:
        write_scenarios(directory)
    if "acceptance" in parts:
        write_acceptance(directory)


def write_scenarios(directory):
    for name in scenarios.SCENARIOS:
        topic = "qv-" + name
        result = run_child("scenario", name, topic)
        if result.returncode != 0:
            raise SystemExit("scenario %s failed:\n%s%s" % (name, result.stdout, result.stderr))
        time.sleep(0.5)
        lines = [json.dumps({"scenario": name, "topic": topic, "partition": p, "offset": o, "key_b64": b64(k),
                             "value_b64": b64(v), "headers": []}, ensure_ascii=False) for p, o, k, v in capture(topic)]
        with open(os.path.join(directory, name + ".jsonl"), "w") as out:
            out.write("\n".join(lines) + "\n")
        print("%s: %d messages" % (name, len(lines)), flush=True)


def write_acceptance(directory):
    recordings = {}
    for case, (key, values) in acceptance.CASES.items():
        topic = "qa-" + case
        result = run_child("record", case, topic)
        recording = next((json.loads(line[len("RECORDING "):]) for line in result.stdout.splitlines() if line.startswith("RECORDING ")), None)
        if recording is None:
            raise SystemExit("case %s: no recording:\n%s%s" % (case, result.stdout, result.stderr))
        output = [COLOUR.sub("", line) for line in (result.stdout + result.stderr).splitlines()]
        log = []
        for index, line in enumerate(output):
            if LOG_LINE.match(line):
                log.append(line)
                if index + 1 < len(output) and not LOG_LINE.match(output[index + 1]) and not output[index + 1].startswith("RECORDING "):
                    log.append(output[index + 1])  # the exception's first line
        recordings[case] = {"streams": recording, "library_log": log, "child_rc": result.returncode, "key": key,
                            "values_b64": [b64(v) for v in values]}
        print("%s: %s" % (case, {s: [c[1] for c in calls] for s, calls in recording.items()}), flush=True)
    with open(os.path.join(directory, "consumer_acceptance.json"), "w") as out:
        out.write(acceptance.dumps(recordings))


def deterministic_messages(path):
    keep = ("scenario", "topic", "partition", "offset", "key_b64", "value_b64", "headers")
    with open(path) as source:
        return [json.dumps({k: json.loads(line)[k] for k in keep}, ensure_ascii=False) for line in source if line.strip()]


def deterministic_cases(path):
    """The acceptance file without the run's clock: event timestamps of raw messages (the
    broker's time), and the log lines' time stamps and thread numbers."""
    with open(path) as source:
        cases = json.load(source)
    for case in cases.values():
        for calls in case["streams"].values():
            for call in calls:
                if call[1] == "events.on_data_received" and isinstance(call[2], dict):
                    call[2]["ts"] = "(broker time)"
        case["library_log"] = [re.sub(r"^\[[^]]*\(\d+\) ", "[(time) (thread) ", line) for line in case["library_log"]]
    return cases


def compare(directory, reference):
    different = []
    for name in scenarios.SCENARIOS:
        ours, theirs = (deterministic_messages(os.path.join(d, name + ".jsonl")) for d in (directory, reference))
        status = "identical" if ours == theirs else "DIFFERENT"
        if ours != theirs:
            different.append(name)
        print("%-22s %3d messages: %s" % (name + ".jsonl", len(ours), status))
    ours, theirs = (deterministic_cases(os.path.join(d, "consumer_acceptance.json")) for d in (directory, reference))
    for case in sorted(set(ours) | set(theirs)):
        if ours.get(case) != theirs.get(case):
            different.append(case)
            print("consumer_acceptance %s: DIFFERENT\n  ours:   %s\n  theirs: %s" % (case, json.dumps(ours.get(case))[:400], json.dumps(theirs.get(case))[:400]))
    print("consumer_acceptance.json %d cases: %s" % (len(ours), "identical (but for the broker's clock)" if not [c for c in different if c in ours] else "DIFFERENT"))
    return 1 if different else 0


def main(argv):
    if len(argv) == 4 and argv[0] == "child":
        child(*argv[1:])
        return 0
    if len(argv) in (2, 3) and argv[0] == "write":
        write(argv[1], argv[2:] or ["scenarios", "acceptance"])
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        return compare(argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
