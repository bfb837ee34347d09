// The per-message codec work of a W1 pipeline, for instruction counts under callgrind
// (Benchmarks/callgrind.sh CodecWorkload): decode the shared bench's 10×3 + tag message into a frame,
// add gForceTotal = |x| + |y| + |z|, encode the frame as the output message.
import Glibc
import QuixProtocol


/// gen.py's `_val`: three decimals in -10..10.
func generatedValue(_ seed: Int) -> Double { Double(seed % 20001 - 10000) / 1000 }

/// gen.py's `make_value(s, m, 10)`, byte-identical to what quixstreams 0.5.7 publishes.
func message(stream: Int, index: Int) -> [UInt8] {
    let base: Int64 = 1_700_000_000_000_000_000
    let first = index * 10
    var data = TimeseriesData(timestamps: (0..<10).map { base + Int64(stream * 1000) + Int64(first + $0) * 1_000_000 })
    data.numericValues["gForceX"] = (0..<10).map { generatedValue(stream * 7919 + (first + $0) * 104729) }
    data.numericValues["gForceY"] = (0..<10).map { generatedValue(stream * 6007 + (first + $0) * 130363 + 17) }
    data.numericValues["gForceZ"] = (0..<10).map { generatedValue(stream * 4099 + (first + $0) * 15485863 + 5) }
    data.tagValues["vehicle"] = Array(repeating: "car-\(stream)", count: 10)
    return QuixCodec.encode(.timeseries(data))
}

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1])! : 10_000
let inputs = (0..<100).map { message(stream: $0 % 50, index: $0 / 50) }
var outputBytes = 0
let mode = CommandLine.arguments.count > 2 ? CommandLine.arguments[2] : "all"
if mode == "decode" {
    for iteration in 0..<count {
        guard case .frame(let frame) = try QuixCodec.decodeFrame(inputs[iteration % inputs.count][...]) else { fatalError() }
        outputBytes &+= frame.rowCount
    }
    print(outputBytes)
    exit(0)
}
if mode == "encode" {
    guard case .frame(var frame) = try QuixCodec.decodeFrame(inputs[0][...]) else { fatalError() }
    frame["gForceTotal"] = frame["gForceX"]!.abs() + frame["gForceY"]!.abs() + frame["gForceZ"]!.abs()
    for _ in 0..<count { outputBytes &+= QuixCodec.encode(frame).count }
    print(outputBytes)
    exit(0)
}
for iteration in 0..<count {
    let input = inputs[iteration % inputs.count]
    guard case .frame(var frame) = try QuixCodec.decodeFrame(input[...]) else { fatalError("not timeseries data") }
    frame["gForceTotal"] = frame["gForceX"]!.abs() + frame["gForceY"]!.abs() + frame["gForceZ"]!.abs()
    outputBytes &+= QuixCodec.encode(frame).count
}
print("\(count) messages, \(outputBytes) output bytes")
