/// Bytes that can be a key or a value: `[UInt8]`, `ArraySlice<UInt8>`, `UnsafeRawBufferPointer`,
/// and `String`/`Substring` (their UTF-8 bytes).
public protocol StateBytes {
    /// Lends the bytes for the duration of `body`.
    func withStateBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R
}

extension Array: StateBytes where Element == UInt8 {
    public func withStateBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { withUnsafeBytes(body) }
}

extension ArraySlice: StateBytes where Element == UInt8 {
    public func withStateBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { withUnsafeBytes(body) }
}

extension UnsafeRawBufferPointer: StateBytes {
    public func withStateBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { body(self) }
}

extension String: StateBytes {
    public func withStateBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        var string = self  // withUTF8 may first make a bridged or lazy string contiguous
        return string.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }
}

extension Substring: StateBytes {
    public func withStateBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        var string = self
        return string.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }
}
