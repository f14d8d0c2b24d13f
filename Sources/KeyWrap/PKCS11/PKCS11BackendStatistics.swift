import CP11Kit
import CryptoCore
import PKCS11Names
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Counters of one backend instance (tests assert on them; operators may log them).
public struct PKCS11BackendStatistics: Sendable, Equatable {
    /// `wrap` calls (after argument checks).
    public var wraps = 0
    /// `unwrap` calls on a well-formed blob.
    public var unwraps = 0
    /// Health checks and KEK creations.
    public var administrative = 0
    /// Sessions opened on the backend token.
    public var sessions = 0
    /// Individual C_* calls made into the backend module (C_OpenSession, C_Login, each C_FindObjects, both
    /// halves of a size-query-then-fetch, …), retries included.
    public var moduleCalls = 0

    /// wraps + unwraps + administrative.
    public var operations: Int { wraps + unwraps + administrative }
}
