// The speeding camera of the Quix Streams 0.5 README as a quixd stage: for each frame of a
// vehicle's telemetry with a row above the limit, a "ticket" event with a JSON document of the
// fastest moment: vehicle, time, speed, fine and the camera frame as photographic proof.
//
// A stage target is all a user writes to add a stage to quixd: a type that conforms to
// `Stage`, a `StageDescriptor` (name, options, how to make it), and one line in quixd's
// registry (Sources/quixd/Stages.swift). README.md, "Writing a stage", walks through it.
import Foundation
import QuixPipeline
import QuixStreams

public struct SpeedingTicketStage: Stage {
    public let limit: Double
    public let speedColumn: String
    public let photoColumn: String
    public let finePerKmh: Double

    public static let descriptor = StageDescriptor(
        name: "speeding-ticket",
        summary: "Sends a \"ticket\" event with the fastest moment and its camera frame when a vehicle exceeds the limit.",
        options: [
            StageOption("limitKmh", "number", required: true, "the speed limit in km/h"),
            StageOption("speed", "name", default: "speed", "the speed column (km/h)"),
            StageOption("photo", "name", default: "camera_frame", "the binary column with the camera frame"),
            StageOption("finePerKmh", "number", default: "100", "the fine per km/h above the limit"),
        ]
    ) { options in
        let limit = options.number("limitKmh")
        let speed = options.string("speed") ?? "speed"
        let photo = options.string("photo") ?? "camera_frame"
        let fine = options.number("finePerKmh") ?? 100
        if let limit, limit <= 0 { options.fail("limitKmh", "expected a positive speed, found \(limit)") }
        guard let limit, limit > 0 else { return nil }
        return SpeedingTicketStage(limit: limit, speedColumn: speed, photoColumn: photo, finePerKmh: fine)
    }

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        if frame.strings[photoColumn] != nil {
            throw PipelineError(.badData, "column \"\(photoColumn)\" holds text; a ticket's photographic proof must be bytes (a binary column)")
        }
        guard let speeds = frame[speedColumn] else { return frame }
        var fastest: Int?
        for row in 0..<frame.rowCount {
            guard let speed = speeds[row], speed > limit else { continue }
            if fastest.map({ speed > speeds[$0]! }) ?? true { fastest = row }
        }
        guard let row = fastest, let speed = speeds[row] else { return frame }
        let ticket = Ticket(
            vehicle: context.streamID, time: frame.timestamps[row], speed: speed, fine: ((speed - limit) * finePerKmh).rounded(),
            photoProof: frame.binary[photoColumn]?[row].map { Data($0).base64EncodedString() })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let document = String(decoding: try encoder.encode(ticket), as: UTF8.self)
        context.emit(EventData(id: "ticket", timestamp: frame.timestamps[row], value: document))
        return frame
    }

    struct Ticket: Encodable {
        var vehicle: String
        var time: Int64
        var speed: Double
        var fine: Double
        var photoProof: String?

        enum CodingKeys: String, CodingKey {
            case vehicle, time, speed, fine
            case photoProof = "photo_proof"
        }
    }
}
