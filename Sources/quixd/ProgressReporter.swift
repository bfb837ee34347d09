import Glibc

/// Progress of long work on standard error: on a terminal, a bar redrawn in place; otherwise
/// (a log, a pipe) a plain line at each tenth of the work, so logs stay readable.
struct ProgressReporter {
    let total: Int
    /// What is counted: `dead letters replayed`.
    let unit: String
    private let isTerminal = isatty(2) == 1
    private var shownTenths = -1

    init(total: Int, unit: String) {
        self.total = total
        self.unit = unit
    }

    mutating func update(_ done: Int) {
        guard total > 0 else { return }
        if isTerminal {
            let width = 30
            let filled = width * done / total
            let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
            writeError("\r[\(bar)] \(done)/\(total) \(unit)")
            if done >= total { writeError("\n") }
        } else {
            let tenths = 10 * done / total
            guard tenths > shownTenths else { return }
            shownTenths = tenths
            writeError("\(done)/\(total) \(unit)\n")
        }
    }

    private func writeError(_ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }
}
