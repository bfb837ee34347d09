import CRdKafka

/// Turns librdkafka messages into events and destroys the librdkafka messages. Lives on the
/// poll thread.
///
/// Keys and values are copied into one buffer per run of messages of one partition (librdkafka
/// hands them out in such runs), and a message's key and value are slices of its run's buffer.
/// A run's messages thus keep only their own run's bytes alive. An application usually queues
/// the runs of one poll batch per partition and finishes them at different times. With one
/// buffer per batch, a single queued message of a partition held the whole batch (up to
/// `maxBatch` messages of every partition). On W1 of the shared bench that was over a hundred
/// megabytes.
struct BatchBuilder {
    private struct Record {
        var topic: String
        var partition: Int32
        var offset: Int64
        var timestamp: Int64?
        var run: Int
        var key: Range<Int>?
        var value: Range<Int>?
        var headers: [KafkaHeader]
    }

    private var topicNames: [OpaquePointer: String] = [:]
    private var records: [Record] = []
    /// The bytes of each run of the messages in `records`.
    private var runs: [[UInt8]] = []
    /// Whether messages get their headers (`ConsumerSettings.readsHeaders`).
    let readsHeaders: Bool

    init(readsHeaders: Bool = true) {
        self.readsHeaders = readsHeaders
    }

    mutating func events(from slots: ArraySlice<UnsafeMutablePointer<rd_kafka_message_t>?>) -> [ConsumerEvent] {
        var events: [ConsumerEvent] = []
        for index in slots.indices {
            guard let message = slots[index] else { continue }
            defer { rd_kafka_message_destroy(message) }
            let record = message.pointee
            let topic = topicName(record.rkt)
            guard record.err == RD_KAFKA_RESP_ERR_NO_ERROR else {
                finishBatch(into: &events)
                if record.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    events.append(.partitionEnd(TopicPartitionOffset(topic, record.partition, offset: record.offset)))
                } else {
                    let text = rd_kafka_message_errstr(message).map { String(cString: $0) }
                    var error = KafkaError.from(record.err, detail: text)!
                    error.detail = "\(topic)[\(record.partition)]: \(error.detail)"
                    events.append(.error(error))
                }
                continue
            }
            if let last = records.last, last.partition == record.partition, last.topic == topic {
                // The same run goes on.
            } else {
                runs.append([])
                runs[runs.count - 1].reserveCapacity(Self.runBytes(slots[index...]))
            }
            var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
            let timestamp = rd_kafka_message_timestamp(message, &timestampType)
            let run = runs.count - 1
            records.append(
                Record(
                    topic: topic, partition: record.partition, offset: record.offset,
                    timestamp: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp, run: run,
                    key: Self.append(record.key, record.key_len, to: &runs[run]),
                    value: Self.append(record.payload, record.len, to: &runs[run]),
                    headers: readsHeaders ? Self.headers(of: message) : []))
        }
        finishBatch(into: &events)
        return events
    }

    private mutating func finishBatch(into events: inout [ConsumerEvent]) {
        guard !records.isEmpty else { return }
        let runs = runs
        events.append(
            .messages(
                records.map { record in
                    KafkaMessage(
                        topic: record.topic, partition: record.partition, offset: record.offset,
                        timestampMilliseconds: record.timestamp, key: record.key.map { runs[record.run][$0] },
                        value: record.value.map { runs[record.run][$0] }, headers: record.headers)
                }))
        records.removeAll(keepingCapacity: true)
        self.runs.removeAll()
    }

    /// The bytes of keys and values of the run of messages of one partition that starts `slots`.
    private static func runBytes(_ slots: ArraySlice<UnsafeMutablePointer<rd_kafka_message_t>?>) -> Int {
        guard let first = slots.first??.pointee else { return 0 }
        var total = 0
        for slot in slots {
            guard let record = slot?.pointee, record.err == RD_KAFKA_RESP_ERR_NO_ERROR, record.rkt == first.rkt,
                record.partition == first.partition
            else { break }
            total += record.len + record.key_len
        }
        return total
    }

    private mutating func topicName(_ rkt: OpaquePointer?) -> String {
        guard let rkt else { return "" }
        if let name = topicNames[rkt] { return name }
        let name = String(cString: rd_kafka_topic_name(rkt))
        topicNames[rkt] = name
        return name
    }

    private static func append(_ pointer: UnsafeMutableRawPointer?, _ count: Int, to storage: inout [UInt8]) -> Range<Int>? {
        guard let pointer else { return nil }
        let start = storage.count
        storage.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: count))
        return start..<storage.count
    }

    private static func headers(of message: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var list: OpaquePointer?
        guard rd_kafka_message_headers(message, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list else { return [] }
        var headers: [KafkaHeader] = []
        var index = 0
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        while rd_kafka_header_get_all(list, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            headers.append(
                KafkaHeader(
                    name.map { String(cString: $0) } ?? "",
                    value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }))
            index += 1
        }
        return headers
    }
}
