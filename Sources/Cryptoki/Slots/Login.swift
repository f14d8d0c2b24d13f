// Login state machine and PIN management of one token (PKCS#11 3.0 §5.6, §5.8). The login is the application's:
// every session of the token shares it.
import CP11Kit
import CryptoCore
import TokenStore

extension Token {
    static func pinLengthOK(_ pin: [UInt8]) -> Bool {
        (CK.minPINLength...CK.maxPINLength).contains(pin.count)
    }

    func login(userType: CK_USER_TYPE, pin: [UInt8]) throws {
        let role: LoginRole
        switch userType {
        case CKU_USER: role = .user
        case CKU_SO: role = .so
        default: throw ckr(CKR_USER_TYPE_INVALID)
        }
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
            let keys = try ErrorMap.guarded("token '\(config.name)': login") {
                try vault.login(role: role.storeRole, pin: pin, backend: backend)
            }
            try state.withLock { s in
                if role == .so, s.hasReadOnlySession { throw ckr(CKR_SESSION_READ_ONLY_EXISTS) }
                s.role = role
                s.keys = keys
            }
            Log.info("token '\(config.name)': \(role == .so ? "SO" : "user") logged in")
        }
    }

    func logout() throws {
        try state.withLock { s in
            guard s.role != nil else { throw ckr(CKR_USER_NOT_LOGGED_IN) }
            s.dropLogin()
        }
        Log.info("token '\(config.name)': logged out")
    }

    /// C_InitToken: no session may be open; an initialised token needs its SO PIN; every object is wiped.
    func initToken(soPIN: [UInt8], label: [UInt8]) throws {
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
            try ErrorMap.guarded("token '\(config.name)': init token") {
                try vault.initialize(soPIN: soPIN, label: padded, backend: backend, maxAttempts: config.maxPINRetries)
            }
            state.withLock { s in
                s.dropLogin()
                s.sessionObjects.removeAll()
                // Handles of wiped objects stay retired (never reused); their lookups fail from now on.
            }
            Log.info("token '\(config.name)': initialised")
        }
    }

    /// C_InitPIN: RW SO session only.
    func initPIN(_ pin: [UInt8], sessionReadWrite: Bool) throws {
        try gate.withLock { _ in
            let keys: SessionKeys = try state.withLock { s in
                guard s.role == .so, let k = s.keys else { throw ckr(CKR_USER_NOT_LOGGED_IN) }
                return k
            }
            guard sessionReadWrite else { throw ckr(CKR_SESSION_READ_ONLY) }
            guard Token.pinLengthOK(pin) else { throw ckr(CKR_PIN_LEN_RANGE) }
            try ErrorMap.guarded("token '\(config.name)': init PIN") { try vault.initUserPIN(pin, using: keys) }
            Log.info("token '\(config.name)': user PIN initialised")
        }
    }

    /// C_SetPIN: the SO's PIN in an SO session, else the user's (RW session required).
    func setPIN(old: [UInt8], new: [UInt8], sessionReadWrite: Bool) throws {
        guard sessionReadWrite else { throw ckr(CKR_SESSION_READ_ONLY) }
        try gate.withLock { _ in
            let role: LoginRole = state.withLock { $0.role == .so ? .so : .user }
            let rec = try record()
            guard rec.isInitialized else { throw ckr(CKR_USER_PIN_NOT_INITIALIZED) }
            if role == .user, !rec.userPIN.isSet { throw ckr(CKR_USER_PIN_NOT_INITIALIZED) }
            if rec.pinStatus(role.storeRole).isLocked { throw ckr(CKR_PIN_LOCKED) }
            guard Token.pinLengthOK(old) else { throw ckr(CKR_PIN_INCORRECT) }
            guard Token.pinLengthOK(new) else { throw ckr(CKR_PIN_LEN_RANGE) }
            try ErrorMap.guarded("token '\(config.name)': set PIN") {
                try vault.setPIN(role: role.storeRole, oldPIN: old, newPIN: new)
            }
            Log.info("token '\(config.name)': \(role == .so ? "SO" : "user") PIN changed")
        }
    }
}
