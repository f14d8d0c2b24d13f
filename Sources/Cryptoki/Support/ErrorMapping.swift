// The one CK_RV mapping of every lower layer's error type, each switch exhaustive (a new case is a compile error
// here, never a silent CKR_GENERAL_ERROR). Logs what the caller cannot see (never a secret: the lower layers'
// messages carry none). The refinements during a cipher operation (an encrypt vs decrypt length error, a bad
// ciphertext) are here too: `cipher(_:direction:context:)` and `n2he(_:direction:)`.
import CP11Kit
import CryptoCore
import KeyWrap
import N2HE
import TokenStore

enum ErrorMap {
    /// Backend failures. `.authenticationFailed` is the *backend's* credentials (HSM PIN, cloud credentials): the
    /// token PIN was verified before any backend call, so it is never the user's fault and must not be
    /// CKR_PIN_INCORRECT (which would touch the retry counter). `.unreachable` was already retried by the backend.
    static func rv(_ e: KeyWrapError) -> CK_RV {
        switch e {
        case .removed: return CKR_DEVICE_REMOVED                 // the HSM token / KMS key is gone or disabled
        case .unreachable, .authenticationFailed, .keyNotFound, .policyViolation, .misconfigured:
            return CKR_DEVICE_ERROR
        case .integrityFailure: return CKR_DEVICE_ERROR          // blob tampered or bound to another token
        }
    }

    static func rv(_ e: CryptoError) -> CK_RV {
        switch e {
        case .randomFailure: return CKR_DEVICE_ERROR
        case .invalidKeyLength, .invalidIVLength, .invalidTagLength, .invalidInputLength, .invalidOutputLength,
             .invalidParameter, .invalidPadding, .authenticationFailed, .integrityFailure, .invalidState,
             .lengthOverflow, .openSSL:
            return CKR_FUNCTION_FAILED
        }
    }

    static func rv(_ e: N2HEError) -> CK_RV {
        switch e {
        case .unsupportedParameters, .invalidKeyLength, .invalidKeyEntry, .malformedKeyFile, .dimensionMismatch,
             .malformedCiphertext, .lengthMismatch, .invalidPlaintextLength, .outputBufferTooSmall,
             .incompatibleCiphertexts, .cryptoBackendFailure:
            return CKR_FUNCTION_FAILED
        }
    }

    static func rv(_ e: StoreError) -> CK_RV {
        switch e {
        case .pinIncorrect(let remaining): return remaining > 0 ? CKR_PIN_INCORRECT : CKR_PIN_LOCKED
        case .pinLocked: return CKR_PIN_LOCKED
        case .userPINNotInitialized: return CKR_USER_PIN_NOT_INITIALIZED
        case .tokenNotInitialized: return CKR_USER_PIN_NOT_INITIALIZED
        case .notLoggedIn: return CKR_USER_NOT_LOGGED_IN
        case .wrongRole: return CKR_USER_NOT_LOGGED_IN
        case .objectNotFound: return CKR_OBJECT_HANDLE_INVALID
        case .duplicateObject: return CKR_GENERAL_ERROR
        case .invalidArgument: return CKR_ARGUMENTS_BAD
        case .backend(let b): return rv(b)
        case .crypto, .integrityFailure, .database, .corrupt, .unsupportedFormat, .busy, .untrustedStore, .tampered,
             .rollback:
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
            return CKRError(rv(e))
        case let e as N2HEError:
            Log.error("\(context()): \(e)")
            return CKRError(rv(e))
        default:
            Log.error("\(context()): \(error)")
            return CKRError(CKR_GENERAL_ERROR)
        }
    }

    /// A failure during an AES (CryptoCore) cipher operation → CK_RV.
    static func cipher(_ error: any Error, direction: CipherDirection, context: @autoclosure () -> String) -> CKRError {
        guard let e = error as? CryptoError else { return wrap(error, context: context()) }
        switch e {
        case .invalidInputLength, .lengthOverflow: return CKRError(direction.lengthError)
        case .invalidPadding, .authenticationFailed, .integrityFailure:
            return CKRError(direction == .decrypt ? CKR_ENCRYPTED_DATA_INVALID : CKR_FUNCTION_FAILED)
        case .invalidKeyLength: return CKRError(CKR_KEY_SIZE_RANGE)
        case .invalidIVLength, .invalidTagLength: return CKRError(CKR_MECHANISM_PARAM_INVALID)
        case .randomFailure, .invalidOutputLength, .invalidParameter, .invalidState, .openSSL:
            return wrap(e, context: context())
        }
    }

    /// A failure during an N2HE cipher operation → CK_RV (CryptoCore errors as for `cipher`).
    static func n2he(_ error: any Error, direction: CipherDirection) -> CKRError {
        guard let e = error as? N2HEError else { return cipher(error, direction: direction, context: "N2HE") }
        switch e {
        case .invalidPlaintextLength: return CKRError(direction.lengthError)
        case .lengthMismatch: return CKRError(CKR_ENCRYPTED_DATA_LEN_RANGE)
        case .malformedCiphertext(let d):
            return CKRError(d == .truncatedHeader ? CKR_ENCRYPTED_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_INVALID)
        case .dimensionMismatch: return CKRError(CKR_ENCRYPTED_DATA_INVALID)
        case .outputBufferTooSmall(let required, _): return CKRError(required > 0 ? CKR_BUFFER_TOO_SMALL : CKR_GENERAL_ERROR)
        case .unsupportedParameters, .invalidKeyLength, .invalidKeyEntry, .malformedKeyFile, .incompatibleCiphertexts,
             .cryptoBackendFailure:
            return wrap(e, context: "N2HE")
        }
    }

    /// Runs `body`, converting foreign errors.
    static func guarded<R>(_ context: @autoclosure () -> String, _ body: () throws -> R) throws -> R {
        do { return try body() } catch { throw wrap(error, context: context()) }
    }
}
