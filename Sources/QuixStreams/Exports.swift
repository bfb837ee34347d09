// `import QuixStreams` is enough to write a Quix app: the models of the wire format
// (StreamProperties, ParameterDefinition, EventData, ...), the ordered maps they use, and the
// Kafka settings (security, librdkafka properties, the mock cluster for tests) are part of
// this library's API.
@_exported import OrderedCollections
@_exported import QuixKafka
@_exported import QuixProtocol
