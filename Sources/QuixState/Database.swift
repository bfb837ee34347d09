/// A named database inside one `StateEnvironment`, from `StateEnvironment.database(named:create:)`.
///
/// Valid in transactions of the environment that opened it (others reject it with `.invalid`)
/// until `StateEnvironment.drop(_:)` deletes the database.
public struct Database: Sendable, Hashable {
    public let name: String
    /// The `MDB_dbi`.
    let dbi: UInt32
    /// The environment that opened the handle; LMDB handles are per environment.
    let environment: ObjectIdentifier
}
