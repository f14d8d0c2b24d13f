import CryptoCore
import KeyWrap
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The root-key envelope (DESIGN §4) over a `TokenDatabase`:
///
/// ```
/// PIN ──scrypt──► PIN key ──GCM──► envelope key (random, per token) ──GCM──► backend blob ──backend──► root key
///      (pin.sealed, one per role)                  (token.wrapped_root, one per token)
/// ```
///
/// Using keys needs a PIN (to open an envelope) and the backend (to unwrap the blob). A PIN is checked by
/// opening its envelope (GCM tag) before any backend call; the attempt is counted in the database *before* the
/// check (killing the process mid-attempt still counts it) and the retry counter reset on success. The envelope
/// key indirection lets a KEK rotation (`rewrapRootKey`) replace the backend blob with one backend call and
/// without knowing every role's PIN.
public struct TokenVault: Sendable {
    /// Default scrypt cost: N = 2^15, r = 8, p = 1 (32 MiB, ~50–100 ms).
    public static let defaultKDFLog2N = 15
    /// Smallest accepted cost (tests).
    public static let minimumKDFLog2N = 10
    /// Largest accepted cost (2^20 · 1 KiB = 1 GiB of memory).
    public static let maximumKDFLog2N = 20
    /// Default retry limit per role.
    public static let defaultMaxAttempts = 10

    static let scryptR = 8
    static let scryptP = 1
    static let saltLength = 16
    static let nonceLength = 12
    static let tagLength = 16

    public let database: TokenDatabase
    /// scrypt log2(N) for envelopes written by this vault (existing envelopes keep their stored cost).
    public let kdfLog2N: Int
    /// What a PIN check did to the retry counter, for an observer that audits it.
    public enum PINCheck: Sendable {
        /// A wrong PIN, counted: the role's consecutive failed attempts (this one included) and the attempts left.
        case wrong(Role, failed: Int, remaining: Int)
        /// A right PIN that reset `cleared` (> 0) consecutive failed attempts; with the keys it unwrapped, if any.
        case clearedFailures(Role, cleared: Int, keys: SessionKeys?)
    }

    /// Told of every wrong PIN once it is counted and of every right one that reset a count (the operator CLI
    /// audits them; the module audits its own through the PIN error it answers and its login record).
    public var pinCheckObserver: (@Sendable (PINCheck) -> Void)?

    /// - Throws: `.invalidArgument` if `kdfLog2N` is outside `minimumKDFLog2N...maximumKDFLog2N`.
    public init(database: TokenDatabase, kdfLog2N: Int = TokenVault.defaultKDFLog2N) throws {
        guard (Self.minimumKDFLog2N...Self.maximumKDFLog2N).contains(kdfLog2N) else {
            throw StoreError.invalidArgument("scrypt log2N must be \(Self.minimumKDFLog2N)...\(Self.maximumKDFLog2N)")
        }
        self.database = database
        self.kdfLog2N = kdfLog2N
    }

    // MARK: C_InitToken

    /// C_InitToken. If the token is already initialised, `soPIN` must open the current SO envelope (counted
    /// like a login; locked SO → `.pinLocked`); the SO PIN stays the same. Then, in one transaction: new serial
    /// number and token UUID, fresh random root key wrapped by `backend`, new envelope key, SO envelope sealed
    /// under `soPIN`, user PIN removed, counters reset, every object deleted. `label` is at most 32 bytes
    /// (blank padded).
    public func initialize(soPIN: some ByteView, label: [UInt8], backend: any KeyWrapBackend,
                           maxAttempts: Int = TokenVault.defaultMaxAttempts) throws {
        guard label.count <= 32 else { throw StoreError.invalidArgument("label longer than 32 bytes") }
        guard (1...1000).contains(maxAttempts) else { throw StoreError.invalidArgument("maxAttempts must be 1...1000") }
        let before = try database.tokenRecord()
        if before.isInitialized {
            _ = try openEnvelope(role: .so, pin: soPIN)
        }
        let paddedLabel = label + [UInt8](repeating: 0x20, count: 32 - label.count)
        let serial = Hex.encode(try crypto { try SecureRandom.bytes(8) }).uppercased()
        let uuid = Hex.encode(try crypto { try SecureRandom.bytes(16) })
        let root = try crypto { try SecretBytes.random(count: 32) }
        let envelopeKey = try crypto { try SecretBytes.random(count: 32) }
        let descriptor = backend.descriptor
        let wrappedRoot = try wrapRoot(root, envelopeKey: envelopeKey, backend: backend, serial: serial, uuid: uuid)
        let envelope = try seal(envelopeKey, role: .so, pin: soPIN, serial: serial, uuid: uuid, maxAttempts: maxAttempts)
        try database.write { conn in
            // Refuse if another process re-initialised between our PIN check and now.
            guard conn.token.record.tokenUUID == before.tokenUUID else { throw StoreError.busy }
            try conn.run("DELETE FROM objects")
            try conn.run("DELETE FROM spent_seeds")
            try conn.run("DELETE FROM hourly_calls")
            try conn.run("DELETE FROM tombstones")
            try conn.run("DELETE FROM pin")
            try conn.run("DELETE FROM pin_attempts")
            try conn.storeEnvelope(.so, envelope)
            try conn.run("""
                UPDATE token SET initialized = 1, label = ?, serial = ?, uuid = ?, flags = 0, backend_kind = ?,
                    backend_key_id = ?, backend_key_version = ?, wrapped_root = ?, format_version = ?,
                    epoch = epoch + 1, pruned_seq = 0 WHERE id = 1
                """) { s in
                try s.bind(1, paddedLabel)
                try s.bind(2, serial)
                try s.bind(3, uuid)
                try s.bind(4, descriptor.kind)
                try s.bind(5, descriptor.keyID)
                try s.bind(6, descriptor.keyVersion)
                try s.bind(7, wrappedRoot)
                try s.bind(8, Int64(TokenDatabase.formatVersion))
            }
            try conn.run("UPDATE token SET ledger_digest = ? WHERE id = 1") { try $0.bind(1, StoreAuthentication.zeroDigest) }
            conn.token = try conn.loadToken()
            try conn.fullReload()
            let keys = SessionKeys(role: .so, tokenUUID: uuid, rootKey: root, envelopeKey: envelopeKey)
            try conn.stampState(key: try StoreAuthentication.key(keys))
        }
        database.checkpoint()
    }

    // MARK: login

    /// C_Login. Order: locked? → count attempt → open envelope with PIN (wrong → `.pinIncorrect(remaining:)`,
    /// last one → `.pinLocked`) → reset counter → open the wrapped root (tampered → `.integrityFailure`) →
    /// `backend.unwrap` (errors → `.backend`) → every object and the token state verify and the store is not
    /// older than its anchor (`TokenDatabase.authenticateAtLogin`: `.tampered`, `.rollback`).
    /// `backend.descriptor.kind`/`keyID` must match the recorded descriptor (`.backend(.misconfigured)`).
    public func login(role: Role, pin: some ByteView, backend: any KeyWrapBackend) throws -> SessionKeys {
        let keys = try unwrapRoot(role: role, pin: pin, backend: backend)
        try database.authenticateAtLogin(keys)
        return keys
    }

    /// The PIN check and the backend unwrap of a login, without the store checks.
    private func unwrapRoot(role: Role, pin: some ByteView, backend: any KeyWrapBackend) throws -> SessionKeys {
        let opened = try openEnvelope(role: role, pin: pin)
        let d = backend.descriptor
        if let recorded = opened.record.backend, recorded.kind != d.kind || recorded.keyID != d.keyID {
            throw StoreError.backend(.misconfigured("token was initialised with backend \(recorded), configured \(d)"))
        }
        guard let recorded = opened.record.backend else { throw StoreError.corrupt("no backend recorded") }
        let blob = try openWrappedRoot(opened.wrappedRoot, envelopeKey: opened.envelopeKey, record: opened.record,
                                       descriptor: recorded)
        var blobBytes = blob.unsafeCopyToArray()
        defer { secureZero(&blobBytes) }
        let root = try backendCall { try backend.unwrap(blobBytes, context: opened.record.wrapContext) }
        let keys = SessionKeys(role: role, tokenUUID: opened.record.tokenUUID, rootKey: root, envelopeKey: opened.envelopeKey,
                               priorFailedAttempts: opened.priorFailedAttempts)
        if keys.priorFailedAttempts > 0 { pinCheckObserver?(.clearedFailures(role, cleared: keys.priorFailedAttempts, keys: keys)) }
        return keys
    }

    /// The SO's keys for recovery (`tg-pkcs11 token accept-rollback`, `restore`): the PIN (counted like a login)
    /// and the backend unwrap the root key, without the store checks of `login` — whose failure is what is being
    /// recovered from. Nothing is trusted through these keys until `acceptState`.
    public func recoveryKeys(soPIN: some ByteView, backend: any KeyWrapBackend) throws -> SessionKeys {
        try unwrapRoot(role: .so, pin: soPIN, backend: backend)
    }

    /// The SO accepts the store as it is (`TokenDatabase.acceptCurrentState`): the one way past `.rollback` and
    /// `.tampered` short of C_InitToken. The new generation is above `floor` too (restore: the generation the
    /// replaced store's anchor recorded).
    public func acceptState(using keys: SessionKeys, floor: Int64 = 0) throws -> TokenDatabase.Acceptance {
        guard keys.role == .so else { throw StoreError.wrongRole }
        return try database.acceptCurrentState(keys, floor: floor)
    }

    /// Checks a PIN (counted exactly like `login`) without calling the backend.
    public func verifyPIN(role: Role, pin: some ByteView) throws {
        let opened = try openEnvelope(role: role, pin: pin)
        if opened.priorFailedAttempts > 0 { pinCheckObserver?(.clearedFailures(role, cleared: opened.priorFailedAttempts, keys: nil)) }
    }

    // MARK: PIN management

    /// C_InitPIN: seals a user envelope under `pin` using the SO's session keys (no backend call). Resets and
    /// unlocks the user counter.
    public func initUserPIN(_ pin: some ByteView, using keys: SessionKeys) throws {
        guard keys.role == .so else { throw StoreError.wrongRole }
        let record = try database.tokenRecord()
        guard record.isInitialized else { throw StoreError.tokenNotInitialized }
        guard record.tokenUUID == keys.tokenUUID else { throw StoreError.notLoggedIn }
        let max = record.soPIN.maxAttempts > 0 ? record.soPIN.maxAttempts : Self.defaultMaxAttempts
        let envelope = try seal(keys.envelopeKey, role: .user, pin: pin, serial: record.serialNumber,
                                uuid: record.tokenUUID, maxAttempts: max)
        try storeResealed(.user, envelope, keys: keys)
    }

    /// C_SetPIN: opens `role`'s envelope with `oldPIN` (counted like a login) and reseals it under `newPIN`
    /// (new salt and nonce). One backend call: the root key authenticates the new state (a copied-back older
    /// store with the old PIN is then a rollback).
    public func setPIN(role: Role, oldPIN: some ByteView, newPIN: some ByteView, backend: any KeyWrapBackend) throws {
        let keys = try unwrapRoot(role: role, pin: oldPIN, backend: backend)
        let record = try database.tokenRecord()
        guard record.tokenUUID == keys.tokenUUID else { throw StoreError.busy }
        let envelope = try seal(keys.envelopeKey, role: role, pin: newPIN, serial: record.serialNumber,
                                uuid: record.tokenUUID, maxAttempts: record.pinStatus(role).maxAttempts)
        try storeResealed(role, envelope, keys: keys)
    }

    // MARK: KEK rotation / backend migration

    /// Re-wraps the root key with `backend` (a new KEK version of the same backend, or another backend) and
    /// records its descriptor. Exactly one backend call (`wrap`); objects and PIN envelopes are untouched.
    /// Any logged-in role's keys work (policy — who may rotate — is the caller's).
    public func rewrapRootKey(using keys: SessionKeys, backend: any KeyWrapBackend) throws {
        let record = try database.tokenRecord()
        guard record.isInitialized else { throw StoreError.tokenNotInitialized }
        guard record.tokenUUID == keys.tokenUUID else { throw StoreError.notLoggedIn }
        let descriptor = backend.descriptor
        let wrappedRoot = try wrapRoot(keys.rootKey, envelopeKey: keys.envelopeKey, backend: backend,
                                       serial: record.serialNumber, uuid: record.tokenUUID)
        let key = try StoreAuthentication.key(keys)
        try database.write { conn in
            guard conn.token.record.tokenUUID == keys.tokenUUID else { throw StoreError.notLoggedIn }
            try conn.checkState(key: key)
            try conn.run("""
                UPDATE token SET backend_kind = ?, backend_key_id = ?, backend_key_version = ?, wrapped_root = ?
                WHERE id = 1
                """) { s in
                try s.bind(1, descriptor.kind)
                try s.bind(2, descriptor.keyID)
                try s.bind(3, descriptor.keyVersion)
                try s.bind(4, wrappedRoot)
            }
            conn.token = try conn.loadToken()
            try conn.stampState(key: key)
        }
        database.checkpoint()
    }

    // MARK: internals

    private func storeResealed(_ role: Role, _ envelope: PINEnvelope, keys: SessionKeys) throws {
        let key = try StoreAuthentication.key(keys)
        try database.write { conn in
            guard conn.token.record.tokenUUID == keys.tokenUUID else { throw StoreError.notLoggedIn }
            try conn.checkState(key: key)
            try conn.storeEnvelope(role, envelope)
            conn.token = try conn.loadToken()
            try conn.stampState(key: key)
        }
        database.checkpoint()
    }

    struct Opened {
        let record: TokenRecord
        let envelopeKey: SecretBytes
        let wrappedRoot: [UInt8]
        /// Consecutive wrong PINs before this attempt (the counter this success reset).
        let priorFailedAttempts: Int
    }

    /// How long an attempt may stay in flight before it is taken for one whose process died (and counted as a
    /// wrong PIN): far above the slowest accepted KDF (2^20, about 5 s).
    static let attemptLifetime: Int64 = 300
    /// How long an attempt waits for a free place when attempts in flight fill the remaining tries.
    static let attemptWaitMilliseconds = 30_000

    /// The PIN check. In one committed transaction the attempt is counted as in flight (`pin_attempts`): with
    /// the wrong PINs so far (the larger of the store's and the anchor's count) the attempts may not exceed the
    /// limit, so racing processes get no more tries than the limit between them. The KDF runs outside the lock.
    /// A wrong PIN then becomes a failure; a right one resets the failures (and reports how many it reset). An
    /// attempt never counts another that is still in flight as a failure.
    private func openEnvelope(role: Role, pin: some ByteView) throws -> Opened {
        let uuid = try database.tokenRecord().tokenUUID
        let (record, envelope, attempt) = try beginAttempt(role: role, uuid: uuid)
        let envelopeKey: SecretBytes
        do {
            guard let opened = try unseal(envelope, role: role, pin: pin, record: record) else {
                let failed = try countFailure(attempt, role: role, envelope: envelope)
                let remaining = max(0, envelope.maxAttempts - failed)
                pinCheckObserver?(.wrong(role, failed: failed, remaining: remaining))
                throw StoreError.pinIncorrect(remaining: remaining)   // 0: this attempt locked the PIN
            }
            envelopeKey = opened
        } catch let e as StoreError {
            if case .pinIncorrect = e {} else {
                // The PIN was not checked (a tampered envelope, no memory for the KDF): the attempt still counts.
                _ = try? countFailure(attempt, role: role, envelope: envelope)
            }
            throw e
        }
        let (fresh, wrappedRoot, prior) = try database.write { conn -> (TokenRecord, [UInt8], Int) in
            guard conn.token.record.tokenUUID == record.tokenUUID else { throw StoreError.busy }
            _ = try conn.endAttempt(attempt)
            let prior = try conn.loadEnvelope(role)?.failed ?? 0
            try conn.setFailed(role, 0)
            conn.token = try conn.loadToken()
            guard let w = try conn.loadWrappedRoot() else { throw StoreError.corrupt("wrapped root key missing") }
            return (conn.token.record, w, prior)
        }
        return Opened(record: fresh, envelopeKey: envelopeKey, wrappedRoot: wrappedRoot, priorFailedAttempts: prior)
    }

    /// The envelope key sealed in `envelope` under `pin`; nil if the PIN is wrong.
    private func unseal(_ envelope: PINEnvelope, role: Role, pin: some ByteView, record: TokenRecord) throws -> SecretBytes? {
        // Bounds on stored KDF parameters: a tampered file must not turn a login into a huge allocation.
        guard (Self.minimumKDFLog2N...Self.maximumKDFLog2N).contains(envelope.log2N), (1...32).contains(envelope.r),
              (1...16).contains(envelope.p), envelope.salt.count == Self.saltLength,
              envelope.sealed.count == Self.nonceLength + 32 + Self.tagLength else { throw StoreError.corrupt("PIN envelope") }
        let key = try crypto {
            try KDF.scrypt(password: pin, salt: envelope.salt, log2N: envelope.log2N, r: envelope.r, p: envelope.p, length: 32)
        }
        let aad = Self.envelopeAAD(role: role, uuid: record.tokenUUID, serial: record.serialNumber,
                                   log2N: envelope.log2N, r: envelope.r, p: envelope.p)
        do {
            return try AESGCM.openSecret(key: key, iv: envelope.sealed[0..<Self.nonceLength],
                                         ciphertextAndTag: envelope.sealed[Self.nonceLength...], aad: aad)
        } catch CryptoError.authenticationFailed {
            return nil
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
    }

    /// Ends `attempt` as a wrong PIN: returns the consecutive failures, this one included.
    private func countFailure(_ attempt: Int64, role: Role, envelope: PINEnvelope) throws -> Int {
        try database.write { conn -> Int in
            guard try conn.endAttempt(attempt), let e = try conn.loadEnvelope(role) else {
                return envelope.failed + 1   // counted already (expired), or the envelope was replaced meanwhile
            }
            try conn.setFailed(role, e.failed + 1)
            conn.token = try conn.loadToken()
            return e.failed + 1
        }
    }

    /// Counts an attempt in flight, waiting (up to `attemptWaitMilliseconds`) while attempts in flight fill the
    /// tries left; attempts whose process died become failures here. Returns the envelope and the attempt's row.
    private func beginAttempt(role: Role, uuid: String) throws -> (TokenRecord, PINEnvelope, Int64) {
        let anchored = try database.anchor?.read(uuid)
        var waited = 0
        while true {
            let begun = try database.write { conn -> (TokenRecord, PINEnvelope, Int64)? in
                guard conn.token.record.isInitialized else { throw StoreError.tokenNotInitialized }
                guard var e = try conn.loadEnvelope(role) else {
                    throw role == .user ? StoreError.userPINNotInitialized : StoreError.tokenNotInitialized
                }
                let now = Int64(time(nil))
                let inFlight = try conn.attemptsInFlight(role, staleBefore: now - Self.attemptLifetime)
                // The anchor's count wins when it is higher: an older or edited store does not clear a lockout.
                var failed = e.failed + inFlight.expired
                if conn.token.record.tokenUUID == uuid, let anchored { failed = max(failed, anchored.failed(role)) }
                failed = min(failed, e.maxAttempts)
                if failed != e.failed { try conn.setFailed(role, failed) }
                e.failed = failed
                guard failed < e.maxAttempts else { throw StoreError.pinLocked }
                guard failed + inFlight.live < e.maxAttempts else { return nil }
                let attempt = try conn.beginAttempt(role, now: now)
                conn.token = try conn.loadToken()
                return (conn.token.record, e, attempt)
            }
            if let begun { return begun }
            guard waited < Self.attemptWaitMilliseconds else { throw StoreError.busy }
            usleep(20_000)
            waited += 20
        }
    }

    /// `backend.wrap(root)` sealed under the envelope key: `nonce[12] || GCM(envelopeKey, blob, rootAAD)`.
    private func wrapRoot(_ root: SecretBytes, envelopeKey: SecretBytes, backend: any KeyWrapBackend,
                          serial: String, uuid: String) throws -> [UInt8] {
        var blob = try backendCall { try backend.wrap(root, context: WrapContext(tokenSerial: serial, tokenUUID: uuid)) }
        defer { secureZero(&blob) }   // for the local backend the blob contains the root key
        return try crypto {
            let nonce = try SecureRandom.bytes(Self.nonceLength)
            let aad = Self.rootAAD(uuid: uuid, serial: serial, descriptor: backend.descriptor)
            return nonce + (try AESGCM.seal(key: envelopeKey, iv: nonce, plaintext: blob, aad: aad))
        }
    }

    private func openWrappedRoot(_ sealed: [UInt8], envelopeKey: SecretBytes, record: TokenRecord,
                                 descriptor: BackendDescriptor) throws -> SecretBytes {
        guard sealed.count >= Self.nonceLength + Self.tagLength else { throw StoreError.integrityFailure }
        let aad = Self.rootAAD(uuid: record.tokenUUID, serial: record.serialNumber, descriptor: descriptor)
        do {
            return try AESGCM.openSecret(key: envelopeKey, iv: sealed[0..<Self.nonceLength],
                                         ciphertextAndTag: sealed[Self.nonceLength...], aad: aad)
        } catch CryptoError.authenticationFailed {
            throw StoreError.integrityFailure
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
    }

    private func seal(_ envelopeKey: SecretBytes, role: Role, pin: some ByteView, serial: String, uuid: String,
                      maxAttempts: Int) throws -> PINEnvelope {
        try crypto {
            let salt = try SecureRandom.bytes(Self.saltLength)
            let key = try KDF.scrypt(password: pin, salt: salt, log2N: kdfLog2N, r: Self.scryptR, p: Self.scryptP, length: 32)
            let nonce = try SecureRandom.bytes(Self.nonceLength)
            let aad = Self.envelopeAAD(role: role, uuid: uuid, serial: serial, log2N: kdfLog2N, r: Self.scryptR, p: Self.scryptP)
            let ct = try AESGCM.seal(key: key, iv: nonce, plaintext: envelopeKey, aad: aad)
            return PINEnvelope(salt: salt, log2N: kdfLog2N, r: Self.scryptR, p: Self.scryptP, sealed: nonce + ct,
                               failed: 0, maxAttempts: maxAttempts)
        }
    }

    /// `"TG-PIN-1" || 0x00 || role ('S' | 'U') || u16be-field(uuid) || u16be-field(serial) || u32be log2N || u32be r || u32be p`
    static func envelopeAAD(role: Role, uuid: String, serial: String, log2N: Int, r: Int, p: Int) -> [UInt8] {
        var out = Array("TG-PIN-1".utf8)
        out.append(0)
        out.append(role == .so ? UInt8(ascii: "S") : UInt8(ascii: "U"))
        RecordCodec.appendField(&out, uuid)
        RecordCodec.appendField(&out, serial)
        for v in [log2N, r, p] { RecordCodec.appendU32(&out, UInt32(truncatingIfNeeded: v)) }
        return out
    }

    /// `"TG-ROOT-1" || 0x00 || u16be-field(uuid) || u16be-field(serial) || u16be-field(kind) || u16be-field(keyID)
    /// || u16be-field(keyVersion)`
    static func rootAAD(uuid: String, serial: String, descriptor: BackendDescriptor) -> [UInt8] {
        var out = Array("TG-ROOT-1".utf8)
        out.append(0)
        for f in [uuid, serial, descriptor.kind, descriptor.keyID, descriptor.keyVersion] { RecordCodec.appendField(&out, f) }
        return out
    }

    private func crypto<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch let e as CryptoError { throw StoreError.crypto(e) }
    }

    private func backendCall<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch let e as KeyWrapError { throw StoreError.backend(e) }
    }
}
