"""Reads every partition of a changelog topic to its end with a plain confluent-kafka consumer,
touching each record's key and value, and prints how long it took: the baseline a state restore
is measured against (Benchmarks/state-restore.sh runs both in one session).

    python changelog-read.py BOOTSTRAP TOPIC PARTITIONS

KAFKA=key=value,... adds or overrides librdkafka properties.

Prints one line: `read N records in S s (C s CPU)`: S from the assignment to the last
partition's end, C the CPU time this process used (librdkafka's threads included).
"""
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING

bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": f"changelog-read-{uuid.uuid4()}",  # assign only: the group is never joined
    "enable.auto.commit": False,
    "enable.partition.eof": True,
    "auto.offset.reset": "earliest",
    # librdkafka >= 2.2 postpones a partition's next fetch by this much (default 1000 ms) once
    # its prefetch queue is over its thresholds, which made this read 6 to 8 s instead of 2.
    "fetch.queue.backoff.ms": 10,
    **dict(kv.split("=", 1) for kv in os.environ.get("KAFKA", "").split(",") if kv),
})
started = time.monotonic()
consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
open_partitions = set(range(partitions))
records = 0
touched = 0
deadline = started + 600
while open_partitions and time.monotonic() < deadline:
    # consume() waits until the batch is full or the timeout passes: keep the timeout short, or
    # the last, partly filled batch adds it to the time.
    for message in consumer.consume(num_messages=10_000, timeout=0.05):
        error = message.error()
        if error is None:
            records += 1
            touched += len(message.key() or b"") + len(message.value() or b"")
        elif error.code() == KafkaError._PARTITION_EOF:
            open_partitions.discard(message.partition())
        else:
            print(f"error: {error}", file=sys.stderr)
print(f"read {records} records in {time.monotonic() - started:.2f} s ({time.process_time():.2f} s CPU)")
consumer.close()
