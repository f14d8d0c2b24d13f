import CryptoCore
import CSQLite
import KeyWrap
import Synchronization

/// One token's SQLite database (`<directory>/token.sqlite`), WAL mode, shared safely by threads and processes.
///
/// Every read call first runs `PRAGMA data_version` (one cached statement); if another connection committed
/// since, the in-memory mirror of the token row and objects is refreshed incrementally. Every write is one
/// `BEGIN IMMEDIATE … COMMIT` transaction committed before the call returns (durable against a crash of the
/// process: WAL with synchronous=NORMAL; see docs/storage-format.md). `find(matching:)` is served from the
/// mirror through hash indexes on the attribute types named at open time.
public final class TokenDatabase: Sendable {
    /// File name inside the token directory.
    public static let fileName = "token.sqlite"
    /// Current storage format version (schema + record layouts).
    public static let formatVersion = 1

    /// Full path of the database file.
    public let path: String
    /// Attribute types with a hash index in the mirror (e.g. CKA_CLASS 0x0, CKA_LABEL 0x3, CKA_ID 0x102).
    public let indexedAttributeTypes: Set<UInt>

    /// Opens (creating if needed) `<directory>/token.sqlite`; creates `directory` (0700) if missing.
    /// - Parameters:
    ///   - indexedAttributes: public attribute types `find` should serve from a hash index.
    ///   - busyTimeoutMilliseconds: how long a write waits for another process's write lock.
    public init(directory: String, indexedAttributes: Set<UInt>, busyTimeoutMilliseconds: Int32 = 10_000) throws {
        self.path = directory + "/" + Self.fileName
        self.indexedAttributeTypes = indexedAttributes
        throw StoreError.crypto(.notImplemented)
    }

    // MARK: Token record

    /// The token row (fresh: re-read if another process changed it).
    public func tokenRecord() throws -> TokenRecord {
        throw StoreError.crypto(.notImplemented)
    }

    /// Persists caller-owned token flag bits.
    public func setTokenFlags(_ flags: UInt64) throws {
        throw StoreError.crypto(.notImplemented)
    }

    // MARK: Objects

    /// A fresh random unique id (32 lowercase hex characters).
    public static func newUniqueID() throws -> String {
        throw StoreError.crypto(.notImplemented)
    }

    /// Inserts a new token object in one committed transaction. `secretAttributes` are sealed with `keys`
    /// (required when non-empty, else `.notLoggedIn`). A type may not be both public and secret
    /// (`.invalidArgument`). Existing `uniqueID` → `.duplicateObject`.
    @discardableResult
    public func insert(uniqueID: String, publicAttributes: [UInt: [UInt8]], secretAttributes: [UInt: SecretBytes] = [:],
                       keys: SessionKeys?) throws -> StoredObject {
        throw StoreError.crypto(.notImplemented)
    }

    /// Replaces the object's public attribute set, and its secret set unless `secretAttributes` is nil
    /// (nil keeps the existing sealed values — e.g. a label change without login). One committed transaction.
    @discardableResult
    public func update(uniqueID: String, publicAttributes: [UInt: [UInt8]], secretAttributes: [UInt: SecretBytes]?,
                       keys: SessionKeys?) throws -> StoredObject {
        throw StoreError.crypto(.notImplemented)
    }

    /// Deletes the object (committed before returning). Missing → `.objectNotFound`.
    public func delete(uniqueID: String) throws {
        throw StoreError.crypto(.notImplemented)
    }

    /// The object, or nil.
    public func object(uniqueID: String) throws -> StoredObject? {
        throw StoreError.crypto(.notImplemented)
    }

    /// Every object, in creation order (oldest first).
    public func allObjects() throws -> [StoredObject] {
        throw StoreError.crypto(.notImplemented)
    }

    /// Objects whose public attributes contain every (type, value) of `template` (byte-exact), in creation
    /// order. Uses the hash index of an indexed type in the template (smallest candidate set); only a template
    /// with no indexed type falls back to scanning the mirror. Empty template → all objects.
    public func find(matching template: [UInt: [UInt8]]) throws -> [StoredObject] {
        throw StoreError.crypto(.notImplemented)
    }

    /// Unseals one secret attribute of `object`. Missing type → `.invalidArgument`; tampered or moved value
    /// → `.integrityFailure`.
    public func unseal(_ object: StoredObject, attribute type: UInt, keys: SessionKeys) throws -> SecretBytes {
        throw StoreError.crypto(.notImplemented)
    }

    /// Number of token objects.
    public func objectCount() throws -> Int {
        throw StoreError.crypto(.notImplemented)
    }
}
