// `import QuixStreams` is enough to write a Quix app: the models of the wire format
// (StreamProperties, ParameterDefinition, EventData, ...) and the ordered maps they use are
// part of this library's API.
@_exported import OrderedCollections
@_exported import QuixProtocol
