// Login state machine and PIN management of one token (PKCS#11 3.0 §5.6, §5.8). The login is the application's:
// every session of the token shares it.
import CP11Kit
import CryptoCore
import TokenStore

extension Token {
    static func pinLengthOK(_ pin: SecretBytes) -> Bool {
        (CK.minPINLength...CK.maxPINLength).contains(pin.count)
    }

    func login(userType: CK_USER_TYPE, pin: SecretBytes) throws {
        let role: LoginRole
        switch userType {
        case CKU_USER: role = .user
        case CKU_SO: role = .so
        default: throw ckr(CKR_USER_TYPE_INVALID)
        }
        try auditedFailure(.login, role: role) {
            try gate.withLock { _ in
                try state.withLock { s in
                    if role == .so, s.hasReadOnlySession { throw ckr(CKR_SESSION_READ_ONLY_EXISTS) }
                    if let current = s.role {
                        throw ckr(current == role ? CKR_USER_ALREADY_LOGGED_IN : CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
                    }
                }
                let rec = try record()
                if !rec.isInitialized {
                    throw ckr(role == .user ? CKR_USER_PIN_NOT_INITIALIZED : CKR_PIN_INCORRECT)
                }
                if role == .user, !rec.userPIN.isSet { throw ckr(CKR_USER_PIN_NOT_INITIALIZED) }
                if rec.pinStatus(role.storeRole).isLocked { throw ckr(CKR_PIN_LOCKED) }
                // A PIN outside the length range can never be right; refuse it without spending a KDF or a retry.
                guard Token.pinLengthOK(pin) else { throw ckr(CKR_PIN_INCORRECT) }
                // The slow part (scrypt + backend unwrap) runs under `gate` only: other sessions keep working.
                // Every object and the token state must verify, and the store must not be older than its anchor.
                let keys = try auditedStoreCall("login", role: role) {
                    try integrityChecked("login", role: role) {
                        try vault.login(role: role.storeRole, pin: pin, backend: backend)
                    }
                }
                // Recorded (with a checkpoint under the new audit key) before the login takes effect.
                try auditor.loggedIn(keys)
                do {
                    try audit(AuditEvent(kind: .login, outcome: .success, role: role,
                                         priorFailedAttempts: keys.priorFailedAttempts))
                    try auditor.checkpoint()
                } catch {
                    auditor.forgetKey()
                    throw error
                }
                do {
                    try state.withLock { s in
                        if role == .so, s.hasReadOnlySession { throw ckr(CKR_SESSION_READ_ONLY_EXISTS) }
                        s.role = role
                        s.keys = keys
                    }
                } catch {
                    auditor.forgetKey()  // the failure is recorded by auditedFailure, after the success record
                    throw error
                }
                Log.info("token '\(config.name)': \(role == .so ? "SO" : "user") logged in")
            }
        }
    }

    func logout() throws {
        let role: LoginRole = try state.withLock { s in
            guard let r = s.role else { throw ckr(CKR_USER_NOT_LOGGED_IN) }
            return r
        }
        // Summaries and the logout go to the log while the audit key is still at hand for the checkpoint.
        auditor.flushUses(session: nil, reason: "logout")
        state.withLock { s in s.dropLogin() }
        auditLogout(role: role, session: nil, reason: nil)
        Log.info("token '\(config.name)': logged out")
    }

    /// C_InitToken: no session may be open; an initialised token needs its SO PIN; every object is wiped.
    func initToken(soPIN: SecretBytes, label: [UInt8]) throws {
        let pending = PendingRecord()
        try auditedFailure(.tokenInit, role: .so, pending: pending) {
            try gate.withLock { _ in
                try state.withLock { s in
                    if !s.sessions.isEmpty { throw ckr(CKR_SESSION_EXISTS) }
                }
                let rec = try record()
                if rec.isInitialized {
                    if rec.soPIN.isLocked { throw ckr(CKR_PIN_LOCKED) }
                    guard Token.pinLengthOK(soPIN) else { throw ckr(CKR_PIN_INCORRECT) }
                } else {
                    guard Token.pinLengthOK(soPIN) else { throw ckr(CKR_PIN_LEN_RANGE) }
                }
                var padded = Array(label.prefix(32))
                while padded.count < 32 { padded.append(0x20) }
                try recordPending(.tokenInit, role: .so, pending)
                try auditedStoreCall("init token", role: .so) {
                    try vault.initialize(soPIN: soPIN, label: padded, backend: backend, maxAttempts: config.maxPINRetries)
                }
                state.withLock { s in
                    s.dropLogin()
                    s.sessionObjects.removeAll()
                    // Handles of wiped objects stay retired (never reused); their lookups fail from now on.
                }
                auditor.forgetKey()
                let serial = (try? record().serialNumber) ?? ""
                AuditCrashPoint.reached(.tokenInit, "done")
                try audit(AuditEvent(kind: .tokenInit, outcome: .success, role: .so,
                                     details: ["label": Encoding.trimmedText(padded), "serial": serial],
                                     pendingSeq: pending.seq))
                Log.info("token '\(config.name)': initialised")
            }
        }
    }

    /// C_InitPIN: RW SO session only.
    func initPIN(_ pin: SecretBytes, sessionReadWrite: Bool) throws {
        let pending = PendingRecord()
        try auditedFailure(.pinInit, role: .so, pending: pending) {
            try gate.withLock { _ in
                let keys: SessionKeys = try state.withLock { s in
                    guard s.role == .so, let k = s.keys else { throw ckr(CKR_USER_NOT_LOGGED_IN) }
                    return k
                }
                guard sessionReadWrite else { throw ckr(CKR_SESSION_READ_ONLY) }
                guard Token.pinLengthOK(pin) else { throw ckr(CKR_PIN_LEN_RANGE) }
                try recordPending(.pinInit, role: .so, pending)
                try ErrorMap.guarded("token '\(config.name)': init PIN") {
                    try integrityChecked("init PIN", role: .so) { try vault.initUserPIN(pin, using: keys) }
                }
                AuditCrashPoint.reached(.pinInit, "done")
                try audit(AuditEvent(kind: .pinInit, outcome: .success, role: .so, details: ["pin_of": "user"],
                                     pendingSeq: pending.seq))
                Log.info("token '\(config.name)': user PIN initialised")
            }
        }
    }

    /// C_SetPIN: the SO's PIN in an SO session, else the user's (RW session required).
    func setPIN(old: SecretBytes, new: SecretBytes, sessionReadWrite: Bool) throws {
        let role: LoginRole = state.withLock { $0.role == .so ? .so : .user }
        let pending = PendingRecord()
        try auditedFailure(.pinChange, role: role, pending: pending) {
            guard sessionReadWrite else { throw ckr(CKR_SESSION_READ_ONLY) }
            try gate.withLock { _ in
                let rec = try record()
                guard rec.isInitialized else { throw ckr(CKR_USER_PIN_NOT_INITIALIZED) }
                if role == .user, !rec.userPIN.isSet { throw ckr(CKR_USER_PIN_NOT_INITIALIZED) }
                if rec.pinStatus(role.storeRole).isLocked { throw ckr(CKR_PIN_LOCKED) }
                guard Token.pinLengthOK(old) else { throw ckr(CKR_PIN_INCORRECT) }
                guard Token.pinLengthOK(new) else { throw ckr(CKR_PIN_LEN_RANGE) }
                try recordPending(.pinChange, role: role, pending)
                try auditedStoreCall("set PIN", role: role) {
                    try integrityChecked("set PIN", role: role) {
                        try vault.setPIN(role: role.storeRole, oldPIN: old, newPIN: new, backend: backend)
                    }
                }
                AuditCrashPoint.reached(.pinChange, "done")
                try audit(AuditEvent(kind: .pinChange, outcome: .success, role: role, pendingSeq: pending.seq))
                Log.info("token '\(config.name)': \(role == .so ? "SO" : "user") PIN changed")
            }
        }
    }
}
