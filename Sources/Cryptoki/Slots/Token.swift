// One slot and its token: the token's store, its login state (shared by every session of this application),
// its session objects and the handle table of its token objects.
//
// Locking: `state` (short critical sections, never held across a KDF or backend call); `gate` serialises the
// slow PIN operations of this token only (login, C_InitToken, C_InitPIN, C_SetPIN), so other tokens and other
// sessions' cryptographic operations keep running during a KDF.
import CP11Kit
import CryptoCore
import KeyWrap
import Synchronization
import TokenStore

enum LoginRole: Sendable, Equatable {
    case user, so
    var storeRole: Role { self == .user ? .user : .so }
}

/// Allocates object and session handles: nonzero, never reused within the process.
final class HandleAllocator: Sendable {
    private let next = Atomic<UInt>(1)
    func allocate() -> UInt { next.wrappingAdd(1, ordering: .relaxed).oldValue }
}

struct SessionObjectEntry: Sendable {
    var record: ObjectRecord
    /// The session that created it: the object dies with that session.
    let owner: CK_SESSION_HANDLE
}

struct TokenState: @unchecked Sendable {
    var role: LoginRole?
    var keys: SessionKeys?
    /// Open sessions of this token → read/write flag.
    var sessions: [CK_SESSION_HANDLE: Bool] = [:]
    var sessionObjects: [CK_OBJECT_HANDLE: SessionObjectEntry] = [:]
    var tokenHandles: [String: CK_OBJECT_HANDLE] = [:]
    var handleUIDs: [CK_OBJECT_HANDLE: String] = [:]
    /// The token key cache (docs/performance.md): unsealed CKA_VALUEs of token objects while logged in, keyed by
    /// unique id, each valid for one store change number and in locked memory (SecretBytes.locked: mlock'ed,
    /// not dumped, zeroed in a fork child). Emptied at logout, C_Finalize and after fork; an entry is checked
    /// against the store (PRAGMA data_version, so another process's change or destroy) before every use.
    var secretCache: [String: CachedSecret] = [:]
    /// Decoded records of token objects (public attributes only), each valid for one store change number.
    var recordCache: [String: ObjectRecord] = [:]

    var hasReadOnlySession: Bool { sessions.values.contains(false) }
    var readWriteCount: Int { sessions.values.filter { $0 }.count }

    mutating func dropLogin() {
        role = nil
        keys = nil
        secretCache.removeAll()   // the last reference: each value is zeroed as it goes (SecretBytes.deinit)
        sessionObjects = sessionObjects.filter { !$0.value.record.isPrivate }
    }
}

/// One entry of the token key cache.
struct CachedSecret {
    let sequence: Int64
    let value: SecretBytes
    /// SecretBytes.forkGeneration when cached: an entry inherited by a fork child is never used there.
    let forkGeneration: UInt64
}

/// Entries beyond which the decoded-record cache starts again (public data only; a bound on memory).
let recordCacheLimit = 16_384

/// A configured token the module could not open (store not creatable or readable, store already used by another
/// token, backend not loadable): its slot is listed, its token answers CKR_TOKEN_NOT_RECOGNIZED (docs/abi.md,
/// "Tokens that cannot be opened"), and the other tokens work.
struct UnusableToken: Error, Sendable {
    let slotID: CK_SLOT_ID
    let config: TokenConfiguration
    let reason: String

    func slotInfo() -> SlotInfo {
        SlotInfo(slotDescription: config.name, manufacturerID: ModuleIdentity.manufacturer,
                 flags: CKF_TOKEN_PRESENT, hardwareVersion: ModuleIdentity.version,
                 firmwareVersion: ModuleIdentity.version)
    }
}

/// One slot: its token, or why it has none that works.
enum Slot: Sendable {
    case usable(Token)
    case unusable(UnusableToken)
}

final class Token: @unchecked Sendable {
    let slotID: CK_SLOT_ID
    let config: TokenConfiguration
    let database: TokenDatabase
    let vault: TokenVault
    let backend: any KeyWrapBackend
    let handles: HandleAllocator
    let state = Mutex<TokenState>(TokenState())
    let gate = Mutex<Void>(())
    /// The audit log's per-token state (Audit/AuditTrail.swift): audit key while logged in, key-use counters.
    let auditor: TokenAuditor
    /// Key creation times, ages and hourly limits (PolicyEnforcement.swift).
    let clock: PolicyClock

    init(slotID: CK_SLOT_ID, config: TokenConfiguration, handles: HandleAllocator, audit: AuditTrail = .disabled,
         clock: PolicyClock = .system) throws {
        self.slotID = slotID
        self.clock = clock
        self.config = config
        self.handles = handles
        self.auditor = TokenAuditor(trail: audit, tokenName: config.name)
        do {
            self.backend = try BackendFactory.make(config.backend)
            for notice in config.backend.deprecationNotices { Log.warning("token '\(config.name)': \(notice)") }
            self.database = try TokenDatabase.open(config, backend: backend)
            self.vault = try TokenVault(database: database, kdfLog2N: config.pinKDFCost)
        } catch {
            throw UnusableToken(slotID: slotID, config: config, reason: "cannot open: \(error)")
        }
    }

    var role: LoginRole? { state.withLock { $0.role } }

    /// The seed ledger of an N2HE key value on this token (docs/n2he.md): HMAC-SHA-256 of the value under a key
    /// derived from the root key, so every copy, session copy and re-unwrap of one key shares one ledger and the
    /// store shows nothing about the value. Needs a login (CKR_USER_NOT_LOGGED_IN otherwise).
    func seedLedgerID(of value: SecretBytes) throws -> String {
        guard let keys = state.withLock({ $0.keys }) else { throw ckr(CKR_USER_NOT_LOGGED_IN) }
        do {
            let ledgerKey = try keys.derivedKey(salt: Array("tensorguard-pkcs11 n2he seed ledger".utf8),
                                                info: Array(keys.tokenUUID.utf8))
            return Hex.encode(try HMAC.authenticate(.sha256, key: ledgerKey, data: value))
        } catch {
            throw ErrorMap.wrap(error, context: "seed ledger")
        }
    }

    /// Spends `digests` in the ledger, all or none (TokenDatabase.spendSeeds); false if one was spent already.
    func spendSeeds(ledgerID: String, digests: [[UInt8]]) throws -> Bool {
        guard let keys = state.withLock({ $0.keys }) else { throw ckr(CKR_USER_NOT_LOGGED_IN) }
        return try ErrorMap.guarded("token '\(config.name)': seed ledger") {
            try integrityChecked("seed ledger", role: state.withLock { $0.role }) {
                try database.spendSeeds(ledgerID: ledgerID, digests: digests, keys: keys)
            }
        }
    }

    /// Counts one raw decryption in `hour` for the ledger; false when `limit` is reached.
    func chargeHourlyCall(ledgerID: String, hour: Int64, limit: Int) throws -> Bool {
        guard let keys = state.withLock({ $0.keys }) else { throw ckr(CKR_USER_NOT_LOGGED_IN) }
        return try ErrorMap.guarded("token '\(config.name)': decrypt call limit") {
            try integrityChecked("decrypt call limit", role: state.withLock { $0.role }) {
                try database.chargeHourlyCall(ledgerID: ledgerID, hour: hour, limit: limit, keys: keys)
            }
        }
    }

    func record() throws -> TokenRecord {
        try ErrorMap.guarded("token '\(config.name)': read token record") { try database.tokenRecord() }
    }

    // MARK: Info

    func tokenInfo() throws -> TokenInfo {
        let rec = try record()
        let (count, rw) = state.withLock { ($0.sessions.count, $0.readWriteCount) }
        var flags: CK_FLAGS = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_CLOCK_ON_TOKEN
        if rec.isInitialized { flags |= CKF_TOKEN_INITIALIZED }
        if rec.userPIN.isSet { flags |= CKF_USER_PIN_INITIALIZED }
        if rec.userPIN.isCountLow { flags |= CKF_USER_PIN_COUNT_LOW }
        if rec.userPIN.isFinalTry { flags |= CKF_USER_PIN_FINAL_TRY }
        if rec.userPIN.isLocked { flags |= CKF_USER_PIN_LOCKED }
        if rec.soPIN.isCountLow { flags |= CKF_SO_PIN_COUNT_LOW }
        if rec.soPIN.isFinalTry { flags |= CKF_SO_PIN_FINAL_TRY }
        if rec.soPIN.isLocked { flags |= CKF_SO_PIN_LOCKED }
        let label = rec.isInitialized ? Encoding.trimmedText(rec.label) : ""
        let serial = rec.serialNumber.isEmpty ? "0000000000000000" : rec.serialNumber
        return TokenInfo(label: label, manufacturerID: ModuleIdentity.manufacturer, model: "TensorGuard soft",
                         serialNumber: serial, flags: flags,
                         maxSessionCount: CK.effectivelyInfinite, sessionCount: CK_ULONG(count),
                         maxRwSessionCount: CK.effectivelyInfinite, rwSessionCount: CK_ULONG(rw),
                         maxPinLen: CK_ULONG(CK.maxPINLength), minPinLen: CK_ULONG(CK.minPINLength),
                         totalPublicMemory: CK.unavailable, freePublicMemory: CK.unavailable,
                         totalPrivateMemory: CK.unavailable, freePrivateMemory: CK.unavailable,
                         hardwareVersion: ModuleIdentity.version, firmwareVersion: ModuleIdentity.version,
                         utcTime: Clock.utcTime())
    }

    func slotInfo() -> SlotInfo {
        SlotInfo(slotDescription: config.name, manufacturerID: ModuleIdentity.manufacturer,
                 flags: CKF_TOKEN_PRESENT, hardwareVersion: ModuleIdentity.version,
                 firmwareVersion: ModuleIdentity.version)
    }

    // MARK: Sessions

    func attach(session: CK_SESSION_HANDLE, readWrite: Bool) throws {
        try state.withLock { s in
            if !readWrite, s.role == .so { throw ckr(CKR_SESSION_READ_WRITE_SO_EXISTS) }
            s.sessions[session] = readWrite
        }
    }

    /// Removes a session: its session objects die; the last session closing logs the application out.
    /// Audit: the session's key-use summaries, and the implicit logout with its checkpoint.
    func detach(session: CK_SESSION_HANDLE, reason: String = "session closed") {
        auditor.flushUses(session: session, reason: reason)
        let loggedOut: LoginRole? = state.withLock { s in
            s.sessions[session] = nil
            s.sessionObjects = s.sessionObjects.filter { $0.value.owner != session }
            guard s.sessions.isEmpty, let role = s.role else { return nil }
            s.dropLogin()
            return role
        }
        if let loggedOut { auditLogout(role: loggedOut, session: session, reason: "last session closed (\(reason))") }
    }

    /// After fork() in the child: like `reset`, but never waits for a lock (a thread of the parent may have held
    /// it at the fork and does not exist here). If the lock is taken, the state is left unreachable instead.
    func resetAfterFork() {
        auditor.abandonAfterFork()
        _ = state.withLockIfAvailable { s in
            s.dropLogin()
            s.sessions.removeAll()
            s.sessionObjects.removeAll()
        }
    }

    /// C_Finalize: forget keys and session objects (after writing the key-use summaries and the logout).
    func reset() {
        auditor.flushUses(session: nil, reason: "C_Finalize")
        let loggedOut: LoginRole? = state.withLock { s in
            let role = s.role
            s.dropLogin()
            s.sessions.removeAll()
            s.sessionObjects.removeAll()
            s.recordCache.removeAll()
            return role
        }
        if let loggedOut { auditLogout(role: loggedOut, session: nil, reason: "C_Finalize") }
        auditor.forgetKey()
    }
}

enum ModuleIdentity {
    static let manufacturer = "TensorGuard"
    static let libraryDescription = "TensorGuard PKCS#11"
    static let version = Version(0, 1)
}
