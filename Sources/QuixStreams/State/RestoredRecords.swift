/// A partition's changelog records in the order read, their bytes in one buffer (no allocation
/// per record): those before the last marker (`sealedCount`) are applicable with that marker's
/// checkpoint; those after it wait for the next marker.
struct RestoredRecords: Sendable {
    struct Entry: Sendable {
        /// Index into `stores`.
        var store: Int
        /// The state key's bytes start here in `bytes`, the value's follow.
        var start: Int
        var keyCount: Int32
        /// -1 for a tombstone.
        var valueCount: Int32
    }

    private(set) var bytes: [UInt8] = []
    private(set) var entries: [Entry] = []
    /// The store names the entries refer to, and their UTF-8 bytes.
    private(set) var stores: [String] = []
    private var storeBytes: [[UInt8]] = []
    /// Entries before the last marker, and where their bytes end.
    private(set) var sealedCount = 0
    private var sealedEnd = 0
    /// The last marker's input offset and the changelog offset after it.
    private(set) var checkpoint: Int64 = 0
    private(set) var changelogOffset: Int64 = 0

    var count: Int { entries.count }
    /// The memory the records take: their bytes and their entries.
    var heldBytes: Int { bytes.count + entries.count * MemoryLayout<Entry>.stride }
    var sealedBytes: Int { sealedEnd }

    /// Adds a record (a changelog key: store name length, store, state key); nil deletes. A
    /// malformed key (too short, or a marker's length) is skipped; returns whether it was kept.
    @discardableResult
    mutating func append(key record: ArraySlice<UInt8>, value: ArraySlice<UInt8>?) -> Bool {
        guard record.count >= 2 else { return false }
        let start = record.startIndex
        let length = Int(record[start]) << 8 | Int(record[start + 1])
        guard length != 0xFFFF, record.count >= 2 + length else { return false }
        let name = record[(start + 2)..<(start + 2 + length)]
        let store: Int
        if let last = entries.last?.store, storeBytes[last].elementsEqual(name) {
            store = last
        } else if let known = storeBytes.firstIndex(where: { $0.elementsEqual(name) }) {
            store = known
        } else {
            store = stores.count
            storeBytes.append(Array(name))
            stores.append(String(decoding: name, as: UTF8.self))
        }
        let key = record[(start + 2 + length)...]
        entries.append(
            Entry(store: store, start: bytes.count, keyCount: Int32(key.count), valueCount: value.map { Int32($0.count) } ?? -1))
        bytes.append(contentsOf: key)
        if let value { bytes.append(contentsOf: value) }
        return true
    }

    /// A marker: everything so far applies with `checkpoint`.
    mutating func seal(checkpoint: Int64, changelogOffset: Int64) {
        sealedCount = entries.count
        sealedEnd = bytes.count
        self.checkpoint = checkpoint
        self.changelogOffset = changelogOffset
    }

    /// The stores of the entries before the last marker.
    var sealedStores: Set<Int> {
        var used = Set<Int>()
        var last = -1
        for entry in entries[..<sealedCount] where entry.store != last {
            last = entry.store
            used.insert(entry.store)
        }
        return used
    }

    /// Calls `body` for each entry before the last marker, in order, with its store's index, its
    /// key and its value (nil: delete). The buffers are valid only inside `body`.
    func forEachSealed(_ body: (Int, UnsafeRawBufferPointer, UnsafeRawBufferPointer?) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { bytes in
            for entry in entries[..<sealedCount] {
                let key = UnsafeRawBufferPointer(rebasing: bytes[entry.start..<(entry.start + Int(entry.keyCount))])
                let valueStart = entry.start + Int(entry.keyCount)
                let value = entry.valueCount < 0
                    ? nil : UnsafeRawBufferPointer(rebasing: bytes[valueStart..<(valueStart + Int(entry.valueCount))])
                try body(entry.store, key, value)
            }
        }
    }

    /// Moves the entries before the last marker out, into records of their own; keeps those
    /// after it.
    mutating func takeSealed() -> RestoredRecords {
        var taken = RestoredRecords()
        taken.stores = stores
        taken.storeBytes = storeBytes
        taken.checkpoint = checkpoint
        taken.changelogOffset = changelogOffset
        taken.sealedCount = sealedCount
        taken.sealedEnd = sealedEnd
        if sealedCount == entries.count {  // nothing after the marker: hand the buffers over whole
            swap(&taken.bytes, &bytes)
            swap(&taken.entries, &entries)
        } else {
            taken.bytes = Array(bytes[..<sealedEnd])
            taken.entries = Array(entries[..<sealedCount])
            removeSealed()
        }
        sealedCount = 0
        sealedEnd = 0
        return taken
    }

    /// Drops the entries before the last marker (they are committed); keeps those after it.
    mutating func removeSealed() {
        guard sealedCount > 0 else { return }
        bytes.removeFirst(sealedEnd)
        entries.removeFirst(sealedCount)
        for index in entries.indices { entries[index].start -= sealedEnd }
        sealedCount = 0
        sealedEnd = 0
    }
}
