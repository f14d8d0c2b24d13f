// PKCS#11 §5.6 session management: C_OpenSession, C_CloseSession, C_CloseAllSessions, C_GetSessionInfo,
// C_Login, C_Logout, and C_SessionCancel (3.0). The table itself: Sessions/SessionTable.swift.
import CP11Kit
import CryptoCore

extension Module {
    public func openSession(_ slot: CK_SLOT_ID, flags: CK_FLAGS) throws -> CK_SESSION_HANDLE {
        let t = try token(slot)
        guard flags & CKF_SERIAL_SESSION != 0 else { throw ckr(CKR_SESSION_PARALLEL_NOT_SUPPORTED) }
        guard try t.record().isInitialized else { throw ckr(CKR_TOKEN_NOT_RECOGNIZED) }
        let rw = flags & CKF_RW_SESSION != 0
        let handle = sessionHandles.allocate()
        let s = Session(handle: handle, token: t, readWrite: rw)
        try t.attach(session: handle, readWrite: rw)
        sessions.withLock { $0[handle] = s }
        Log.debug("session \(handle) opened on slot \(slot) (\(rw ? "RW" : "RO"))")
        return handle
    }

    public func closeSession(_ handle: CK_SESSION_HANDLE) throws {
        guard let s = sessions.withLock({ $0.removeValue(forKey: handle) }) else {
            throw ckr(CKR_SESSION_HANDLE_INVALID)
        }
        s.ops.withLock { $0 = Operations() }
        s.token.detach(session: handle)
    }

    public func closeAllSessions(_ slot: CK_SLOT_ID) throws {
        let t = try token(slot)
        let closing = sessions.withLock { table -> [Session] in
            let mine = table.values.filter { $0.token === t }
            for s in mine { table[s.handle] = nil }
            return mine
        }
        for s in closing {
            s.ops.withLock { $0 = Operations() }
            t.detach(session: s.handle)
        }
    }

    /// The work is Token.login (Slots/Login.swift): PIN check, root-key unwrap, lockout.
    public func login(_ handle: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pin: SecretBytes) throws {
        let s = try session(handle)
        if userType == CKU_CONTEXT_SPECIFIC {
            // No key of this token has CKA_ALWAYS_AUTHENTICATE: there is never an operation awaiting it.
            throw ckr(CKR_OPERATION_NOT_INITIALIZED)
        }
        try s.token.login(userType: userType, pin: pin)
    }

    public func sessionInfo(_ session: CK_SESSION_HANDLE) throws -> SessionInfo { try self.session(session).info() }

    public func logout(_ session: CK_SESSION_HANDLE) throws { try self.session(session).token.logout() }

    /// C_SessionCancel (3.0): ends the operations named by `flags` (CKF_ENCRYPT, CKF_DECRYPT, ...).
    public func cancelOperations(_ session: CK_SESSION_HANDLE, flags: CK_FLAGS) throws {
        try self.session(session).ops.withLock { $0.cancel(flags) }
    }
}
