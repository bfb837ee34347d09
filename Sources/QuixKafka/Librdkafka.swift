import CRdKafka

/// The version of the librdkafka this process runs on, e.g. `2.0.2`.
public var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }
