// PKCS#11 §5.5 slot and token management: C_GetSlotList … C_SetPIN. The token's own work is in Slots/.
import CP11Kit
import CryptoCore

extension Module {
    public func slotList(tokenPresent: Bool) -> [CK_SLOT_ID] { slots.indices.map { CK_SLOT_ID($0) } }
    public func slotInfo(_ slot: CK_SLOT_ID) throws -> SlotInfo {
        guard slot < CK_SLOT_ID(slots.count) else { throw CKRError(CKR_SLOT_ID_INVALID) }
        switch slots[Int(slot)] {
        case .usable(let t): return t.slotInfo()
        case .unusable(let u): return u.slotInfo()
        }
    }
    public func tokenInfo(_ slot: CK_SLOT_ID) throws -> TokenInfo { try token(slot).tokenInfo() }
    /// The mechanisms the token's policy allows (`allowed_mechanisms`; all of them by default).
    public func mechanismList(_ slot: CK_SLOT_ID) throws -> [CK_MECHANISM_TYPE] {
        try allowedMechanisms(slot)
    }
    public func mechanismInfo(_ slot: CK_SLOT_ID, _ type: CK_MECHANISM_TYPE) throws -> MechanismInfo {
        guard try token(slot).config.policy.allows(type) else { throw CKRError(CKR_MECHANISM_INVALID) }
        return try Mechanisms.info(type)
    }
    /// `label` is the caller's 32 bytes, blank padded.
    public func initToken(_ slot: CK_SLOT_ID, soPIN: SecretBytes, label: [UInt8]) throws {
        try token(slot).initToken(soPIN: soPIN, label: label)
    }
    public func initPIN(_ session: CK_SESSION_HANDLE, pin: SecretBytes) throws {
        let s = try self.session(session)
        try s.token.initPIN(pin, sessionReadWrite: s.readWrite)
    }
    public func setPIN(_ session: CK_SESSION_HANDLE, oldPIN: SecretBytes, newPIN: SecretBytes) throws {
        let s = try self.session(session)
        try s.token.setPIN(old: oldPIN, new: newPIN, sessionReadWrite: s.readWrite)
    }
}
