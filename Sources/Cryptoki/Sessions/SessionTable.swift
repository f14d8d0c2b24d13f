// The module's session table: slot → token and handle → session lookups (the calls that change it are in
// API/SessionManagement.swift).
import CP11Kit

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
}
