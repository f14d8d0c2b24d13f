import CP11Kit
import CryptoCore
import PKCS11Names
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure for which `session` may reset the module and/or retry once.
struct PKCS11RecoverableFailure: Error {
    let error: KeyWrapError
    let resetModule: Bool
    let transient: Bool
}
