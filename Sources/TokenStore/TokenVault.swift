import CryptoCore
import KeyWrap

/// The root-key envelope (DESIGN §4) over a `TokenDatabase`:
///
///   root key (random 256 bit) --backend.wrap(context)--> blob --AES-256-GCM under scrypt(PIN)--> PIN envelope
///
/// One envelope per role (SO, user) holds the same backend blob. A PIN is checked by opening its envelope
/// (GCM tag) before any backend call; the retry counter is incremented in the database *before* the check
/// (so killing the process mid-attempt still counts it) and reset on success.
public struct TokenVault: Sendable {
    /// Default scrypt cost: N = 2^15, r = 8, p = 1 (32 MiB, ~50–100 ms).
    public static let defaultKDFLog2N = 15
    /// Smallest accepted cost (tests).
    public static let minimumKDFLog2N = 10
    /// Default retry limit per role.
    public static let defaultMaxAttempts = 10

    public let database: TokenDatabase
    /// scrypt log2(N) for envelopes written by this vault (existing envelopes keep their stored cost).
    public let kdfLog2N: Int

    /// - Throws: `.invalidArgument` if `kdfLog2N` is outside `minimumKDFLog2N...20`.
    public init(database: TokenDatabase, kdfLog2N: Int = TokenVault.defaultKDFLog2N) throws {
        self.database = database
        self.kdfLog2N = kdfLog2N
        throw StoreError.crypto(.notImplemented)
    }

    /// C_InitToken. If the token is already initialised, `soPIN` must open the current SO envelope (counted
    /// like a login; locked SO → `.pinLocked`). Then, in one transaction: new serial number and token UUID,
    /// fresh random root key wrapped by `backend`, SO envelope sealed under `soPIN`, user PIN removed,
    /// counters reset, every object deleted. `label` is at most 32 bytes (blank padded).
    public func initialize(soPIN: some ByteView, label: [UInt8], backend: any KeyWrapBackend,
                           maxAttempts: Int = TokenVault.defaultMaxAttempts) throws {
        throw StoreError.crypto(.notImplemented)
    }

    /// C_Login. Order: locked? → count attempt → open envelope with PIN (wrong → `.pinIncorrect(remaining:)`,
    /// last one → `.pinLocked`) → reset counter → `backend.unwrap` (errors → `.backend`).
    /// `backend.descriptor.kind`/`keyID` must match the recorded descriptor (`.backend(.misconfigured)`).
    public func login(role: Role, pin: some ByteView, backend: any KeyWrapBackend) throws -> SessionKeys {
        throw StoreError.crypto(.notImplemented)
    }

    /// Checks a PIN (counted exactly like `login`) without calling the backend.
    public func verifyPIN(role: Role, pin: some ByteView) throws {
        throw StoreError.crypto(.notImplemented)
    }

    /// C_InitPIN: seals a user envelope under `pin` using the SO's session keys (no backend call). Resets and
    /// unlocks the user counter.
    public func initUserPIN(_ pin: some ByteView, using keys: SessionKeys) throws {
        throw StoreError.crypto(.notImplemented)
    }

    /// C_SetPIN: opens `role`'s envelope with `oldPIN` (counted like a login) and reseals it under `newPIN`.
    public func setPIN(role: Role, oldPIN: some ByteView, newPIN: some ByteView) throws {
        throw StoreError.crypto(.notImplemented)
    }
}
