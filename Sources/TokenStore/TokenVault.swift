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
    /// Largest accepted cost (2^20 · 1 KiB = 1 GiB of memory).
    public static let maximumKDFLog2N = 20
    /// Default retry limit per role.
    public static let defaultMaxAttempts = 10

    static let scryptR = 8
    static let scryptP = 1
    static let saltLength = 16
    static let nonceLength = 12

    public let database: TokenDatabase
    /// scrypt log2(N) for envelopes written by this vault (existing envelopes keep their stored cost).
    public let kdfLog2N: Int

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
    /// like a login; locked SO → `.pinLocked`). Then, in one transaction: new serial number and token UUID,
    /// fresh random root key wrapped by `backend`, SO envelope sealed under `soPIN`, user PIN removed,
    /// counters reset, every object deleted. `label` is at most 32 bytes (blank padded).
    public func initialize(soPIN: some ByteView, label: [UInt8], backend: any KeyWrapBackend,
                           maxAttempts: Int = TokenVault.defaultMaxAttempts) throws {
        guard label.count <= 32 else { throw StoreError.invalidArgument("label longer than 32 bytes") }
        guard (1...1000).contains(maxAttempts) else { throw StoreError.invalidArgument("maxAttempts must be 1...1000") }
        let before = try database.tokenRecord()
        if before.isInitialized {
            _ = try openEnvelope(role: .so, pin: soPIN)
        }
        let paddedLabel = label + [UInt8](repeating: 0x20, count: 32 - label.count)
        let serialBytes = try crypto { try SecureRandom.bytes(8) }
        let serial = Hex.lower(serialBytes).uppercased()
        let uuid = Hex.lower(try crypto { try SecureRandom.bytes(16) })
        let context = WrapContext(tokenSerial: serial, tokenUUID: uuid)
        let root = try crypto { try SecretBytes.random(count: 32) }
        var blob = try backendCall { try backend.wrap(root, context: context) }
        let blobSecret = SecretBytes(copying: blob)
        secureZero(&blob)   // for the local backend the blob contains the root key
        let envelope = try seal(blob: blobSecret, role: .so, pin: soPIN, serial: serial, uuid: uuid, maxAttempts: maxAttempts)
        let descriptor = backend.descriptor
        try database.write { conn in
            // Refuse if another process re-initialised between our PIN check and now.
            guard conn.token.record.tokenUUID == before.tokenUUID else { throw StoreError.busy }
            try conn.run("DELETE FROM objects")
            try conn.run("DELETE FROM tombstones")
            try conn.run("DELETE FROM pin")
            try conn.storeEnvelope(.so, envelope)
            try conn.run("""
                UPDATE token SET initialized = 1, label = ?, serial = ?, uuid = ?, flags = 0, backend_kind = ?,
                    backend_key_id = ?, backend_key_version = ?, format_version = ?, epoch = epoch + 1,
                    pruned_seq = 0 WHERE id = 1
                """) { s in
                try conn.bind(s, 1, paddedLabel)
                try conn.bind(s, 2, serial)
                try conn.bind(s, 3, uuid)
                try conn.bind(s, 4, descriptor.kind)
                try conn.bind(s, 5, descriptor.keyID)
                try conn.bind(s, 6, descriptor.keyVersion)
                try conn.bind(s, 7, Int64(TokenDatabase.formatVersion))
            }
            conn.token = try conn.loadToken()
            try conn.fullReload()
        }
        database.checkpoint()
    }

    // MARK: login

    /// C_Login. Order: locked? → count attempt → open envelope with PIN (wrong → `.pinIncorrect(remaining:)`,
    /// last one → `.pinLocked`) → reset counter → `backend.unwrap` (errors → `.backend`).
    /// `backend.descriptor.kind`/`keyID` must match the recorded descriptor (`.backend(.misconfigured)`).
    public func login(role: Role, pin: some ByteView, backend: any KeyWrapBackend) throws -> SessionKeys {
        let opened = try openEnvelope(role: role, pin: pin)
        let d = backend.descriptor
        if let recorded = opened.record.backend, recorded.kind != d.kind || recorded.keyID != d.keyID {
            throw StoreError.backend(.misconfigured("token was initialised with backend \(recorded), configured \(d)"))
        }
        var blob = opened.blob.unsafeCopyToArray()
        defer { secureZero(&blob) }
        let root = try backendCall { try backend.unwrap(blob, context: opened.record.wrapContext) }
        return SessionKeys(role: role, tokenUUID: opened.record.tokenUUID, rootKey: root, backendBlob: opened.blob)
    }

    /// Checks a PIN (counted exactly like `login`) without calling the backend.
    public func verifyPIN(role: Role, pin: some ByteView) throws {
        _ = try openEnvelope(role: role, pin: pin)
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
        let envelope = try seal(blob: keys.backendBlob, role: .user, pin: pin, serial: record.serialNumber,
                                uuid: record.tokenUUID, maxAttempts: max)
        try storeResealed(.user, envelope, uuid: record.tokenUUID)
    }

    /// C_SetPIN: opens `role`'s envelope with `oldPIN` (counted like a login) and reseals it under `newPIN`.
    public func setPIN(role: Role, oldPIN: some ByteView, newPIN: some ByteView) throws {
        let opened = try openEnvelope(role: role, pin: oldPIN)
        let max = opened.record.pinStatus(role).maxAttempts
        let envelope = try seal(blob: opened.blob, role: role, pin: newPIN, serial: opened.record.serialNumber,
                                uuid: opened.record.tokenUUID, maxAttempts: max)
        try storeResealed(role, envelope, uuid: opened.record.tokenUUID)
    }

    // MARK: internals

    private func storeResealed(_ role: Role, _ envelope: PINEnvelope, uuid: String) throws {
        try database.write { conn in
            guard conn.token.record.tokenUUID == uuid else { throw StoreError.notLoggedIn }
            try conn.storeEnvelope(role, envelope)
            conn.token = try conn.loadToken()
        }
        database.checkpoint()
    }

    struct Opened {
        let record: TokenRecord
        let blob: SecretBytes
    }

    /// The PIN check: count the attempt first (one committed transaction), derive outside the lock, open the
    /// envelope, reset the counter on success.
    private func openEnvelope(role: Role, pin: some ByteView) throws -> Opened {
        let (record, envelope) = try database.write { conn -> (TokenRecord, PINEnvelope) in
            guard conn.token.record.isInitialized else { throw StoreError.tokenNotInitialized }
            guard var e = try conn.loadEnvelope(role) else {
                throw role == .user ? StoreError.userPINNotInitialized : StoreError.tokenNotInitialized
            }
            guard e.failed < e.maxAttempts else { throw StoreError.pinLocked }
            e.failed += 1
            try conn.setFailed(role, e.failed)
            conn.token = try conn.loadToken()
            return (conn.token.record, e)
        }
        guard (1...30).contains(envelope.log2N), envelope.salt.count == Self.saltLength,
              envelope.sealed.count > Self.nonceLength + 16 else { throw StoreError.corrupt("PIN envelope") }
        let key = try crypto {
            try KDF.scrypt(password: pin, salt: envelope.salt, log2N: envelope.log2N, r: envelope.r, p: envelope.p, length: 32)
        }
        let aad = Self.envelopeAAD(role: role, uuid: record.tokenUUID, serial: record.serialNumber,
                                   log2N: envelope.log2N, r: envelope.r, p: envelope.p)
        let blob: SecretBytes
        do {
            blob = try AESGCM.openSecret(key: key, iv: envelope.sealed[0..<Self.nonceLength],
                                         ciphertextAndTag: envelope.sealed[Self.nonceLength...], aad: aad)
        } catch CryptoError.authenticationFailed {
            let remaining = max(0, envelope.maxAttempts - envelope.failed)
            throw remaining == 0 ? StoreError.pinLocked : StoreError.pinIncorrect(remaining: remaining)
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
        let fresh = try database.write { conn -> TokenRecord in
            guard conn.token.record.tokenUUID == record.tokenUUID else { throw StoreError.busy }
            try conn.setFailed(role, 0)
            conn.token = try conn.loadToken()
            return conn.token.record
        }
        return Opened(record: fresh, blob: blob)
    }

    private func seal(blob: SecretBytes, role: Role, pin: some ByteView, serial: String, uuid: String,
                      maxAttempts: Int) throws -> PINEnvelope {
        try crypto {
            let salt = try SecureRandom.bytes(Self.saltLength)
            let key = try KDF.scrypt(password: pin, salt: salt, log2N: kdfLog2N, r: Self.scryptR, p: Self.scryptP, length: 32)
            let nonce = try SecureRandom.bytes(Self.nonceLength)
            let aad = Self.envelopeAAD(role: role, uuid: uuid, serial: serial, log2N: kdfLog2N, r: Self.scryptR, p: Self.scryptP)
            let ct = try AESGCM.seal(key: key, iv: nonce, plaintext: blob, aad: aad)
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

    private func crypto<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch let e as CryptoError { throw StoreError.crypto(e) }
    }

    private func backendCall<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch let e as KeyWrapError { throw StoreError.backend(e) }
    }
}
