import QuixStreams
import Synchronization

/// Which rows and events each of a pipeline's outputs takes: a row goes to every output whose
/// `when` holds for it (an output without `when` takes every row), events go to the outputs with
/// `events: true`. `quixd run` and `quixd test` route with it alike.
public struct OutputRoutes: Sendable {
    public let outputs: [Pipeline.Output]

    public init(_ outputs: [Pipeline.Output]) { self.outputs = outputs }

    /// The rows of `frame` for each output that takes any, by output index, in output order.
    public func route(_ frame: TimeseriesFrame) -> [(output: Int, frame: TimeseriesFrame)] {
        var routed: [(output: Int, frame: TimeseriesFrame)] = []
        for (index, output) in outputs.enumerated() {
            guard let when = output.when else {
                routed.append((index, frame))
                continue
            }
            let mask = when.mask(in: frame)
            if mask.selectedCount == frame.rowCount {
                routed.append((index, frame))
            } else if mask.selectedCount > 0 {
                routed.append((index, frame.filter(mask)))
            }
        }
        return routed
    }

    /// Whether the output at `index` takes events.
    public func takesEvents(_ index: Int) -> Bool { outputs[index].events }
}

extension Pipeline.Output {
    /// Whether the output takes only some rows or no events.
    public var isSelective: Bool { when != nil || !events }
}

/// A pipeline's outputs behind one `PipelineOutput`: rows and events routed by `OutputRoutes`.
///
/// An output that takes every row and event gets each stream's properties and definitions as
/// they come. An output that takes only some (a `when`, or `events: false`) gets a stream's
/// properties and definitions when it first receives something of that stream, and their
/// changes after that, so it holds no empty streams; a StreamEnd goes to the outputs that have
/// the stream. Each message's deliveries carry its input offset whichever output sends them, so
/// its offset commits only once every output holds its effects (docs/runtime.md).
final class RoutedOutput: PipelineOutput {
    private let routes: OutputRoutes
    private let sinks: [any PipelineOutput]
    /// Per stream: the last properties and definitions, and which selective outputs have it.
    private let streams = Mutex([String: StreamHeader]())

    private struct StreamHeader {
        var properties: (StreamProperties, [(key: String, value: String)])?
        var parameters: ParameterDefinitions?
        var events: EventDefinitions?
        var started = Set<Int>()
    }

    init(routes: OutputRoutes, sinks: [any PipelineOutput]) {
        precondition(routes.outputs.count == sinks.count)
        self.routes = routes
        self.sinks = sinks
    }

    private func isSelective(_ index: Int) -> Bool { routes.outputs[index].isSelective }

    /// Sends a selective output what it has not seen of `stream` before its first row or event.
    private func start(_ index: Int, stream: String) async throws {
        guard isSelective(index) else { return }
        let header = streams.withLock { streams -> StreamHeader? in
            guard streams[stream, default: StreamHeader()].started.insert(index).inserted else { return nil }
            return streams[stream]
        }
        guard let header else { return }
        if let (properties, metadata) = header.properties { try await sinks[index].forward(properties, metadata: metadata, stream: stream) }
        if let definitions = header.parameters { try await sinks[index].forward(definitions, stream: stream) }
        if let definitions = header.events { try await sinks[index].forward(definitions, stream: stream) }
    }

    /// The outputs to forward a stream's header change to now: the unselective ones, and the
    /// selective ones that have the stream; `change` records it for the others.
    private func headerTargets(_ stream: String, _ change: (inout StreamHeader) -> Void) -> [Int] {
        let started = streams.withLock { streams in
            change(&streams[stream, default: StreamHeader()])
            return streams[stream]!.started
        }
        return sinks.indices.filter { !isSelective($0) || started.contains($0) }
    }

    func write(_ frame: TimeseriesFrame, stream: String) async throws {
        for (index, rows) in routes.route(frame) {
            try await start(index, stream: stream)
            try await sinks[index].write(rows, stream: stream)
        }
    }

    func write(_ events: [EventData], stream: String) async throws {
        for index in sinks.indices where routes.takesEvents(index) {
            try await start(index, stream: stream)
            try await sinks[index].write(events, stream: stream)
        }
    }

    func forward(_ properties: StreamProperties, metadata: [(key: String, value: String)], stream: String) async throws {
        for index in headerTargets(stream, { $0.properties = (properties, metadata) }) {
            try await sinks[index].forward(properties, metadata: metadata, stream: stream)
        }
    }

    func forward(_ definitions: ParameterDefinitions, stream: String) async throws {
        for index in headerTargets(stream, { $0.parameters = definitions }) { try await sinks[index].forward(definitions, stream: stream) }
    }

    func forward(_ definitions: EventDefinitions, stream: String) async throws {
        for index in headerTargets(stream, { $0.events = definitions }) { try await sinks[index].forward(definitions, stream: stream) }
    }

    func end(_ stream: String, _ type: StreamEndType) async throws {
        let started = streams.withLock { $0.removeValue(forKey: stream)?.started ?? [] }
        for index in sinks.indices where !isSelective(index) || started.contains(index) { try await sinks[index].end(stream, type) }
    }

    func release(_ stream: String) async throws {
        streams.withLock { _ = $0.removeValue(forKey: stream) }
        for sink in sinks { try await sink.release(stream) }
    }

    func flush() async throws {
        for sink in sinks { try await sink.flush() }
    }

    func close() async {
        for sink in sinks { await sink.close() }
    }

    func onSent(_ handler: @escaping @Sendable (_ bytes: Int) -> Void) {
        for sink in sinks { sink.onSent(handler) }
    }
}
