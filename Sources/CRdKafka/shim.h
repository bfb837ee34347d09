#ifndef QUIX_CRDKAFKA_SHIM_H
#define QUIX_CRDKAFKA_SHIM_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/// One message into librdkafka's queue through rd_kafka_produceva, which returns its error
/// (no thread-local rd_kafka_last_error to read after the fact). The payload and key are copied.
/// On success `headers` belong to librdkafka; on failure they are still the caller's.
/// A NULL `value` produces a tombstone; `timestamp_ms` 0 lets librdkafka take the send time.
static inline rd_kafka_error_t *quix_produce(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition,
                                             const void *key, size_t key_len,
                                             const void *value, size_t value_len,
                                             rd_kafka_headers_t *headers, int64_t timestamp_ms,
                                             void *opaque) {
    rd_kafka_vu_t vus[8];
    size_t n = 0;
    vus[n].vtype = RD_KAFKA_VTYPE_RKT;
    vus[n++].u.rkt = rkt;
    vus[n].vtype = RD_KAFKA_VTYPE_PARTITION;
    vus[n++].u.i32 = partition;
    vus[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vus[n++].u.i = RD_KAFKA_MSG_F_COPY;
    if (key != NULL) {
        vus[n].vtype = RD_KAFKA_VTYPE_KEY;
        vus[n].u.mem.ptr = (void *)key;
        vus[n++].u.mem.size = key_len;
    }
    vus[n].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[n].u.mem.ptr = (void *)value;
    vus[n++].u.mem.size = value_len;
    if (headers != NULL) {
        vus[n].vtype = RD_KAFKA_VTYPE_HEADERS;
        vus[n++].u.headers = headers;
    }
    if (timestamp_ms != 0) {
        vus[n].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
        vus[n++].u.i64 = timestamp_ms;
    }
    vus[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vus[n++].u.ptr = opaque;
    return rd_kafka_produceva(rk, vus, n);
}

#endif
