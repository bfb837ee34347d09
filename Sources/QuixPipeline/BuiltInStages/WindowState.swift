/// What a `window` stage keeps per stream between messages (see `WindowStage` for the keys).
extension WindowStage {
    /// An open window's running aggregates.
    struct Accumulator: Codable, Sendable, Hashable {
        var start: Int64
        /// Exclusive.
        var end: Int64
        var count = 0
        var sum = 0.0
        var min = Double.infinity
        var max = -Double.infinity
        var first = Double.nan
        var firstAt = Int64.max
        var last = Double.nan
        var lastAt = Int64.min

        init(start: Int64, end: Int64) {
            self.start = start
            self.end = end
        }

        mutating func add(_ timestamp: Int64, _ value: Double) {
            count += 1
            sum += value
            min = Swift.min(min, value)
            max = Swift.max(max, value)
            if timestamp < firstAt || count == 1 {
                first = value
                firstAt = timestamp
            }
            if timestamp >= lastAt || count == 1 {
                last = value
                lastAt = timestamp
            }
        }

        /// Adds the values of `other` (a session that a row bridged to this one).
        mutating func merge(_ other: Accumulator) {
            start = Swift.min(start, other.start)
            end = Swift.max(end, other.end)
            count += other.count
            sum += other.sum
            min = Swift.min(min, other.min)
            max = Swift.max(max, other.max)
            if other.count > 0, count == other.count || other.firstAt < firstAt {
                first = other.first
                firstAt = other.firstAt
            }
            if other.count > 0, count == other.count || other.lastAt >= lastAt {
                last = other.last
                lastAt = other.lastAt
            }
        }

        func value(_ aggregate: Aggregate) -> Double? {
            if aggregate == .count { return Double(count) }
            guard count > 0 else { return nil }
            switch aggregate {
            case .mean: return sum / Double(count)
            case .sum: return sum
            case .min: return min
            case .max: return max
            case .count: return Double(count)
            case .first: return first
            case .last: return last
            }
        }

        enum CodingKeys: String, CodingKey {
            case start = "s", end = "e", count = "n", sum, min, max, first = "f", firstAt = "ft", last = "l", lastAt = "lt"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            start = try container.decode(Int64.self, forKey: .start)
            end = try container.decode(Int64.self, forKey: .end)
            count = try container.decode(Int.self, forKey: .count)
            sum = try container.decode(Number.self, forKey: .sum).value
            min = try container.decode(Number.self, forKey: .min).value
            max = try container.decode(Number.self, forKey: .max).value
            first = try container.decode(Number.self, forKey: .first).value
            firstAt = try container.decode(Int64.self, forKey: .firstAt)
            last = try container.decode(Number.self, forKey: .last).value
            lastAt = try container.decode(Int64.self, forKey: .lastAt)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(start, forKey: .start)
            try container.encode(end, forKey: .end)
            try container.encode(count, forKey: .count)
            try container.encode(Number(sum), forKey: .sum)
            try container.encode(Number(min), forKey: .min)
            try container.encode(Number(max), forKey: .max)
            try container.encode(Number(first), forKey: .first)
            try container.encode(firstAt, forKey: .firstAt)
            try container.encode(Number(last), forKey: .last)
            try container.encode(lastAt, forKey: .lastAt)
        }
    }

    /// The values a sliding window may still need, in arrival order.
    struct Rows: Codable, Sendable, Hashable {
        var timestamps: [Int64] = []
        var values: [Double] = []

        init() {}

        mutating func keep(from oldest: Int64) {
            let kept = timestamps.indices.filter { timestamps[$0] >= oldest }
            guard kept.count < timestamps.count else { return }
            timestamps = kept.map { timestamps[$0] }
            values = kept.map { values[$0] }
        }

        enum CodingKeys: String, CodingKey {
            case timestamps = "t", values = "v"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            timestamps = try container.decode([Int64].self, forKey: .timestamps)
            values = try container.decode([Number].self, forKey: .values).map(\.value)
            guard timestamps.count == values.count else {
                throw DecodingError.dataCorruptedError(forKey: .values, in: container, debugDescription: "as many values as timestamps expected")
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(timestamps, forKey: .timestamps)
            try container.encode(values.map(Number.init), forKey: .values)
        }
    }

    /// A Double in JSON: a number when finite, else "nan", "inf" or "-inf" (JSON has none).
    struct Number: Codable, Sendable, Hashable {
        var value: Double

        init(_ value: Double) { self.value = value }

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let number = try? container.decode(Double.self) {
                value = number
                return
            }
            switch try container.decode(String.self) {
            case "nan": value = .nan
            case "inf": value = .infinity
            case "-inf": value = -.infinity
            case let other: throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(other)\" is not a number")
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            if value.isFinite {
                try container.encode(value)
            } else {
                try container.encode(value.isNaN ? "nan" : value > 0 ? "inf" : "-inf")
            }
        }
    }
}
