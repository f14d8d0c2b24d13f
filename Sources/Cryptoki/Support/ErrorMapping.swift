// Maps lower layers' errors onto CK_RV, logging what the caller cannot see (never a secret: the lower layers'
// messages carry none).
import CP11Kit
import CryptoCore
import KeyWrap
import N2HE
import TokenStore

enum ErrorMap {
    static func rv(_ e: KeyWrapError) -> CK_RV {
        switch e {
        case .removed: return CKR_DEVICE_REMOVED
        default: return CKR_DEVICE_ERROR
        }
    }

    static func rv(_ e: StoreError) -> CK_RV {
        switch e {
        case .pinIncorrect: return CKR_PIN_INCORRECT
        case .pinLocked: return CKR_PIN_LOCKED
        case .userPINNotInitialized: return CKR_USER_PIN_NOT_INITIALIZED
        case .tokenNotInitialized: return CKR_USER_PIN_NOT_INITIALIZED
        case .notLoggedIn: return CKR_USER_NOT_LOGGED_IN
        case .wrongRole: return CKR_USER_NOT_LOGGED_IN
        case .objectNotFound: return CKR_OBJECT_HANDLE_INVALID
        case .duplicateObject: return CKR_GENERAL_ERROR
        case .invalidArgument: return CKR_ARGUMENTS_BAD
        case .backend(let b): return rv(b)
        case .crypto, .integrityFailure, .database, .corrupt, .unsupportedFormat, .busy:
            return CKR_DEVICE_ERROR
        }
    }

    /// Converts any error thrown below Cryptoki into a CKRError (CKRError passes through).
    static func wrap(_ error: any Error, context: @autoclosure () -> String) -> CKRError {
        switch error {
        case let e as CKRError:
            return e
        case let e as StoreError:
            let r = rv(e)
            if r == CKR_DEVICE_ERROR || r == CKR_GENERAL_ERROR || r == CKR_DEVICE_REMOVED {
                Log.error("\(context()): \(e)")
            } else {
                Log.info("\(context()): \(e)")
            }
            return CKRError(r)
        case let e as KeyWrapError:
            Log.error("\(context()): \(e)")
            return CKRError(rv(e))
        case let e as CryptoError:
            Log.error("\(context()): \(e)")
            return CKRError(e == .randomFailure ? CKR_DEVICE_ERROR : CKR_FUNCTION_FAILED)
        case let e as N2HEError:
            Log.error("\(context()): \(e)")
            return CKRError(CKR_FUNCTION_FAILED)
        default:
            Log.error("\(context()): \(error)")
            return CKRError(CKR_GENERAL_ERROR)
        }
    }

    /// Runs `body`, converting foreign errors.
    static func guarded<R>(_ context: @autoclosure () -> String, _ body: () throws -> R) throws -> R {
        do { return try body() } catch { throw wrap(error, context: context()) }
    }
}
