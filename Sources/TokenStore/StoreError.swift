import CryptoCore
import KeyWrap

/// Errors thrown by TokenStore. Messages never contain PINs, keys or attribute values.
///
/// Their CK_RV mapping is `ErrorMap.rv(_: StoreError)` in Cryptoki/Support/ErrorMapping.swift.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// SQLite failed; `code` is the extended result code, `message` SQLite's text (never bound values).
    case database(code: Int32, message: String)
    /// The write lock stayed busy beyond the busy timeout.
    case busy
    /// The file is not a TensorGuard token database or a record is malformed.
    case corrupt(String)
    /// The database was written by a newer format version than this build understands.
    case unsupportedFormat(Int)
    /// The token has not been initialised (C_InitToken never ran).
    case tokenNotInitialized
    /// Wrong PIN, counted; `remaining` attempts are left before the role locks (0: this attempt locked it).
    case pinIncorrect(remaining: Int)
    /// The role's retry counter is at its maximum: the attempt was refused before any PIN check.
    case pinLocked
    /// No user PIN has been set since the last C_InitToken.
    case userPINNotInitialized
    /// A sealed value or PIN envelope failed authentication (tampered, moved, or sealed under another root key).
    case integrityFailure
    /// Secret attributes need a logged-in `SessionKeys`.
    case notLoggedIn
    /// The operation needs session keys of another role (e.g. initUserPIN needs SO keys).
    case wrongRole
    case objectNotFound(String)
    case duplicateObject(String)
    /// A caller argument is invalid (empty unique id, label too long, bad KDF cost, …).
    case invalidArgument(String)
    /// The key backend failed.
    case backend(KeyWrapError)
    /// A cryptographic primitive failed (other than authentication, which maps to the cases above).
    case crypto(CryptoError)
    /// The store directory or a database file fails the ownership rule (`TrustedFile`): owned by another user, or
    /// it or a directory above it writable by group or others. The text names the path and the reason.
    case untrustedStore(String)
    /// Stored state failed authentication under the root key (docs/storage-format.md §Authentication): an object
    /// edited, swapped, replayed or removed, or the token state altered. The text names what failed (no values).
    case tampered(String)
    /// The store is older than the state recorded in its anchor (a copied-back database): refused until the SO
    /// accepts it (`tg-pkcs11 token accept-rollback`).
    case rollback(stored: Int64, recorded: Int64)

    public var description: String {
        switch self {
        case .database(let c, let m): return "database error \(c): \(m)"
        case .busy: return "database busy"
        case .corrupt(let m): return "token database corrupt: \(m)"
        case .unsupportedFormat(let v): return "unsupported storage format version \(v)"
        case .tokenNotInitialized: return "token not initialized"
        case .pinIncorrect(let r): return r > 0 ? "PIN incorrect (\(r) attempts left)" : "PIN incorrect, and now locked"
        case .pinLocked: return "PIN locked"
        case .userPINNotInitialized: return "user PIN not initialized"
        case .integrityFailure: return "sealed data failed its integrity check"
        case .notLoggedIn: return "not logged in"
        case .wrongRole: return "operation needs another role"
        case .objectNotFound(let id): return "object \(id) not found"
        case .duplicateObject(let id): return "object \(id) already exists"
        case .invalidArgument(let m): return "invalid argument: \(m)"
        case .backend(let e): return e.description
        case .crypto(let e): return e.description
        case .untrustedStore(let m): return "refusing the token store: \(m)"
        case .tampered(let m): return "token store failed authentication: \(m)"
        case .rollback(let stored, let recorded) where stored == recorded:
            return "token store at generation \(stored) is not the one its anchor recorded at that generation: another copy of the store"
        case .rollback(let stored, let recorded):
            return "token store is at generation \(stored) but generation \(recorded) was recorded: an older copy of the store (rolled back)"
        }
    }
}

extension StoreError {
    /// A CLI's message for a PIN failure of `role` ("SO PIN incorrect (2 attempts left)"); nil for other errors.
    public func pinFailure(role: String) -> String? {
        switch self {
        case .pinIncorrect(let r) where r > 0: return "\(role) incorrect (\(r) attempts left)"
        case .pinIncorrect: return "\(role) incorrect, and now locked"
        case .pinLocked: return "\(role) locked"
        default: return nil
        }
    }

    /// The PIN is locked after this error: the attempt that locked it, or one refused because it was.
    public var locksPIN: Bool {
        switch self {
        case .pinIncorrect(0), .pinLocked: return true
        default: return false
        }
    }
}
