// The module's session table: open/close, login routing, random numbers.
import CP11Kit
import CryptoCore

extension Module {
    /// The token of `slot`: CKR_SLOT_ID_INVALID for no such slot, CKR_TOKEN_NOT_RECOGNIZED when its token could
    /// not be opened (Module.init).
    func token(_ slot: CK_SLOT_ID) throws -> Token {
        guard slot < CK_SLOT_ID(slots.count) else { throw ckr(CKR_SLOT_ID_INVALID) }
        switch slots[Int(slot)] {
        case .usable(let t): return t
        case .unusable: throw ckr(CKR_TOKEN_NOT_RECOGNIZED)
        }
    }

    func session(_ handle: CK_SESSION_HANDLE) throws -> Session {
        guard let s = sessions.withLock({ $0[handle] }) else { throw ckr(CKR_SESSION_HANDLE_INVALID) }
        return s
    }

    func openSessionImpl(_ slot: CK_SLOT_ID, flags: CK_FLAGS) throws -> CK_SESSION_HANDLE {
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

    func closeSessionImpl(_ handle: CK_SESSION_HANDLE) throws {
        guard let s = sessions.withLock({ $0.removeValue(forKey: handle) }) else {
            throw ckr(CKR_SESSION_HANDLE_INVALID)
        }
        s.ops.withLock { $0 = Operations() }
        s.token.detach(session: handle)
    }

    func closeAllSessionsImpl(_ slot: CK_SLOT_ID) throws {
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

    func loginImpl(_ handle: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pin: [UInt8]) throws {
        let s = try session(handle)
        if userType == CKU_CONTEXT_SPECIFIC {
            // No key of this token has CKA_ALWAYS_AUTHENTICATE: there is never an operation awaiting it.
            throw ckr(CKR_OPERATION_NOT_INITIALIZED)
        }
        try s.token.login(userType: userType, pin: pin)
    }

    func generateRandomImpl(_ handle: CK_SESSION_HANDLE, into buffer: UnsafeMutableRawBufferPointer) throws {
        _ = try session(handle)
        do { try SecureRandom.fill(buffer) } catch { throw ErrorMap.wrap(error, context: "random") }
    }
}
