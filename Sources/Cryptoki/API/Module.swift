// The whole PKCS#11 surface as Swift methods, one per C entry point, in the order of the C function list.
// The C ABI layer (Sources/TensorGuardPKCS11) converts pointers into these values, calls one method and
// maps a thrown CKRError to its CK_RV. Every method is safe to call from many threads at once.
//
// Contract for output-producing calls: `.lengthQuery` and a too-small buffer leave the operation active
// (answer `.lengthRequired` / `.bufferTooSmall`); success or any error ends a single-part operation
// (PKCS#11 §5.2). Input buffers are the caller's memory, valid during the one call only.
//
// Where the work happens (for a newcomer): Config/ (YAML), Slots/ (token state, login), Sessions/ (session
// table, operation slots, the crypto calls), Objects/ (policy table, templates, store access), Mechanisms/
// (one file per family), Logging/. The methods below only route.
import CP11Kit
import Synchronization
import TokenStore

public final class Module: @unchecked Sendable {
    let configuration: Configuration
    /// One per configured token, in configuration order (the slot ID is the index).
    let slots: [Slot]
    /// The tokens that could be opened.
    let tokens: [Token]
    let sessionHandles = HandleAllocator()
    let objectHandles = HandleAllocator()
    let sessions = Mutex<[CK_SESSION_HANDLE: Session]>([:])

    /// Loads the configuration (DESIGN §6): `configPath` (from C_Initialize pReserved) when given, else
    /// TENSORGUARD_PKCS11_CONF, $XDG_CONFIG_HOME/tensorguard-pkcs11/config.yaml,
    /// /etc/tensorguard-pkcs11/config.yaml, else the built-in default (one `local` token).
    ///
    /// Errors: CKR_ARGUMENTS_BAD when `configPath` names no readable file; CKR_GENERAL_ERROR for every other
    /// configuration problem (syntax, unknown key, bad value, group/world-writable file). The reason is logged
    /// (level error, stderr unless the configuration named a file). A token whose store cannot be created or
    /// opened, or whose store another token already uses, does not fail the module: its slot is listed and
    /// answers CKR_TOKEN_NOT_RECOGNIZED (`Slot.unusable`), and the reason is logged at level error.
    public init(configPath: String?) throws {
        Log.shared.configureFromEnvironment()
        let config: Configuration
        do {
            config = try ConfigurationLoader.load(explicitPath: configPath)
        } catch let e as ConfigurationError {
            Log.error(e.message)
            throw CKRError(e.rv)
        } catch {
            throw ErrorMap.wrap(error, context: "configuration")
        }
        Log.shared.configure(level: config.logLevel, file: config.logFile)
        Log.info("configuration from \(config.source): \(config.tokens.count) token(s)")
        var tokens: [Token] = []
        let trail: AuditTrail
        do {
            trail = try AuditTrail.make(config.audit)
        } catch let e as ConfigurationError {
            Log.error(e.message)
            throw CKRError(e.rv)
        }
        // Audit fails closed: where the log cannot be written, no token is offered (its first state change would
        // reach the store and then fail for want of its record).
        var auditProblem: String?
        do { try trail.log?.checkWritable() } catch { auditProblem = "\(error)" }
        var slots: [Slot] = []
        var storeOwners: [StoreDirectory: String] = [:]
        for (i, t) in config.tokens.enumerated() {
            let slotID = CK_SLOT_ID(i)
            do {
                if let auditProblem {
                    throw UnusableToken(slotID: slotID, config: t, reason: "the audit log cannot be written: \(auditProblem)")
                }
                let directory: StoreDirectory
                do { directory = try StoreDirectory.prepare(t.store) } catch {
                    throw UnusableToken(slotID: slotID, config: t, reason: "\(error)")
                }
                // One store, one token: a second token on the same directory would wipe the first's objects.
                if let owner = storeOwners[directory] {
                    throw UnusableToken(slotID: slotID, config: t,
                                        reason: "store \(directory.resolvedPath) is already the store of token '\(owner)'")
                }
                storeOwners[directory] = t.name
                let token = try Token(slotID: slotID, config: t, handles: objectHandles, audit: trail)
                tokens.append(token)
                slots.append(.usable(token))
            } catch let unusable as UnusableToken {
                Log.error("token '\(t.name)' (slot \(slotID), store \(t.store)) is not usable: \(unusable.reason)")
                slots.append(.unusable(unusable))
            }
        }
        self.configuration = config
        self.slots = slots
        self.tokens = tokens
    }

    /// C_Finalize: closes every session, zeroises every key held in memory, closes databases.
    public func finalize() {
        let all = sessions.withLock { s in
            let v = Array(s.values)
            s.removeAll()
            return v
        }
        for s in all { s.token.detach(session: s.handle, reason: "C_Finalize") }
        for t in tokens { t.reset() }
    }

    /// In a child process after fork(): zeroise in-memory secrets and drop all state without touching
    /// resources shared with the parent (database connections, backend sessions are abandoned, not closed).
    public func abandonAfterFork() {
        // No lock is waited for here: one held by a parent thread at fork() would never be released.
        _ = sessions.withLockIfAvailable { $0.removeAll() }
        for t in tokens {
            t.resetAfterFork()
            // Never close the parent's SQLite connections from the child: keep the token (and its database
            // handle) alive forever instead of letting deinit close it.
            _ = Unmanaged.passRetained(t)
        }
        Log.shared.abandonAfterFork()
    }

    // MARK: General, slots, tokens
    public var info: ModuleInfo {
        ModuleInfo(cryptokiVersion: Version(2, 40), manufacturerID: ModuleIdentity.manufacturer, flags: 0,
                   libraryDescription: ModuleIdentity.libraryDescription, libraryVersion: ModuleIdentity.version)
    }
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
    public func initToken(_ slot: CK_SLOT_ID, soPIN: [UInt8], label: [UInt8]) throws {
        try token(slot).initToken(soPIN: soPIN, label: label)
    }
    public func initPIN(_ session: CK_SESSION_HANDLE, pin: [UInt8]) throws {
        let s = try self.session(session)
        try s.token.initPIN(pin, sessionReadWrite: s.readWrite)
    }
    public func setPIN(_ session: CK_SESSION_HANDLE, oldPIN: [UInt8], newPIN: [UInt8]) throws {
        let s = try self.session(session)
        try s.token.setPIN(old: oldPIN, new: newPIN, sessionReadWrite: s.readWrite)
    }

    // MARK: Sessions and login
    public func openSession(_ slot: CK_SLOT_ID, flags: CK_FLAGS) throws -> CK_SESSION_HANDLE {
        try openSessionImpl(slot, flags: flags)
    }
    public func closeSession(_ session: CK_SESSION_HANDLE) throws { try closeSessionImpl(session) }
    public func closeAllSessions(_ slot: CK_SLOT_ID) throws { try closeAllSessionsImpl(slot) }
    public func sessionInfo(_ session: CK_SESSION_HANDLE) throws -> SessionInfo { try self.session(session).info() }
    public func login(_ session: CK_SESSION_HANDLE, userType: CK_USER_TYPE, pin: [UInt8]) throws {
        try loginImpl(session, userType: userType, pin: pin)
    }
    public func logout(_ session: CK_SESSION_HANDLE) throws { try self.session(session).token.logout() }
    /// C_SessionCancel (3.0): ends the operations named by `flags` (CKF_ENCRYPT, CKF_DECRYPT, ...).
    public func cancelOperations(_ session: CK_SESSION_HANDLE, flags: CK_FLAGS) throws {
        try self.session(session).ops.withLock { $0.cancel(flags) }
    }

    // MARK: Objects
    public func createObject(_ session: CK_SESSION_HANDLE, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        try audited(session, Module.createKind(template), creates: true) { try createObjectImpl(session, template: template) } ?? 0
    }
    public func copyObject(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        let source = (try? self.session(session)).flatMap { $0.token.auditDescription(object, access: $0.access) }
        return try audited(session, .objectCopy, details: ["source_uid": source?.uid ?? "?"], creates: true) {
            try copyObjectImpl(session, object, template: template)
        } ?? 0
    }
    public func destroyObject(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE) throws {
        _ = try audited(session, .objectDestroy, target: object) { try destroyObjectImpl(session, object); return nil }
    }
    public func objectSize(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE) throws -> CK_ULONG {
        try objectSizeImpl(session, object)
    }
    /// One answer per requested type, in order.
    public func attributeValues(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE,
                                types: [CK_ATTRIBUTE_TYPE]) throws -> [AttributeQueryResult] {
        try attributeValuesImpl(session, object, types: types)
    }
    public func setAttributeValues(_ session: CK_SESSION_HANDLE, _ object: CK_OBJECT_HANDLE, template: [Attribute]) throws {
        _ = try audited(session, .attributeChange, target: object, details: ["attributes": Module.attributeNames(template)]) {
            try setAttributeValuesImpl(session, object, template: template)
            return nil
        }
    }
    public func findObjectsInit(_ session: CK_SESSION_HANDLE, template: [Attribute]) throws {
        try findObjectsInitImpl(session, template: template)
    }
    public func findObjects(_ session: CK_SESSION_HANDLE, maxCount: Int) throws -> [CK_OBJECT_HANDLE] {
        try findObjectsImpl(session, maxCount: maxCount)
    }
    public func findObjectsFinal(_ session: CK_SESSION_HANDLE) throws { try findObjectsFinalImpl(session) }

    // MARK: Encryption and decryption
    public func encryptInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        try cipherInit(session, mechanism: mechanism, key: key, direction: .encrypt)
        noteKeyUse(session, key: key, operation: "encrypt", mechanism: mechanism.type)
    }
    public func encrypt(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try cipherSingle(session, input: input, output: output, direction: .encrypt)
    }
    public func encryptUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try cipherUpdate(session, input: input, output: output, direction: .encrypt)
    }
    public func encryptFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try cipherFinal(session, output: output, direction: .encrypt)
    }
    public func decryptInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        try cipherInit(session, mechanism: mechanism, key: key, direction: .decrypt)
        noteKeyUse(session, key: key, operation: "decrypt", mechanism: mechanism.type)
    }
    public func decrypt(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try cipherSingle(session, input: input, output: output, direction: .decrypt)
    }
    public func decryptUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try cipherUpdate(session, input: input, output: output, direction: .decrypt)
    }
    public func decryptFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try cipherFinal(session, output: output, direction: .decrypt)
    }

    // MARK: Digests
    public func digestInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism) throws { try digestInitImpl(session, mechanism: mechanism) }
    public func digest(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try digestImpl(session, input: input, output: output)
    }
    public func digestUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer) throws {
        try digestUpdateImpl(session, input: input)
    }
    public func digestKey(_ session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) throws { try digestKeyImpl(session, key: key) }
    public func digestFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try digestFinalImpl(session, output: output)
    }

    // MARK: Signatures and MACs
    public func signInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        try macInit(session, mechanism: mechanism, key: key, verify: false)
        noteKeyUse(session, key: key, operation: "sign", mechanism: mechanism.type)
    }
    public func sign(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try signImpl(session, input: input, output: output)
    }
    public func signUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer) throws {
        try macUpdate(session, input: input, verify: false)
    }
    public func signFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try signFinalImpl(session, output: output)
    }
    public func verifyInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        try macInit(session, mechanism: mechanism, key: key, verify: true)
        noteKeyUse(session, key: key, operation: "verify", mechanism: mechanism.type)
    }
    /// Throws CKR_SIGNATURE_INVALID / CKR_SIGNATURE_LEN_RANGE for a bad signature; ends the operation.
    public func verify(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, signature: UnsafeRawBufferPointer) throws {
        try verifyImpl(session, input: input, signature: signature)
    }
    public func verifyUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer) throws {
        try macUpdate(session, input: input, verify: true)
    }
    public func verifyFinal(_ session: CK_SESSION_HANDLE, signature: UnsafeRawBufferPointer) throws {
        try verifyFinalImpl(session, signature: signature)
    }

    // MARK: Keys
    public func generateKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        try audited(session, .objectGenerate, mechanism: mechanism.type, creates: true) {
            try generateKeyImpl(session, mechanism: mechanism, template: template)
        } ?? 0
    }
    public func wrapKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, wrappingKey: CK_OBJECT_HANDLE,
                        key: CK_OBJECT_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try auditedWrap(session, mechanism: mechanism.type, wrappingKey: wrappingKey, key: key) {
            try wrapKeyImpl(session, mechanism: mechanism, wrappingKey: wrappingKey, key: key, output: output)
        }
    }
    public func unwrapKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, unwrappingKey: CK_OBJECT_HANDLE,
                          wrappedKey: UnsafeRawBufferPointer, template: [Attribute]) throws -> CK_OBJECT_HANDLE {
        let unwrapper = (try? self.session(session)).flatMap { $0.token.auditDescription(unwrappingKey, access: $0.access) }
        return try audited(session, .unwrap, mechanism: mechanism.type, details: ["unwrapping_key_uid": unwrapper?.uid ?? "?"],
                           creates: true) {
            try unwrapKeyImpl(session, mechanism: mechanism, unwrappingKey: unwrappingKey, wrappedKey: wrappedKey, template: template)
        } ?? 0
    }

    // MARK: Random
    /// Accepted and ignored (as SoftHSM2 accepts it): OpenSSL's CSPRNG seeds itself from the OS.
    /// C_GenerateKeyPair and C_DeriveKey: the token offers no key-pair or key-derivation mechanism, so once the
    /// session is valid every mechanism is invalid for them (CKR_MECHANISM_INVALID, as PKCS#11 §5.14 prefers
    /// over CKR_FUNCTION_NOT_SUPPORTED for a function whose mechanisms the token lacks).
    public func generateKeyPair(_ session: CK_SESSION_HANDLE, mechanism: Mechanism) throws {
        _ = try self.session(session)
        throw CKRError(CKR_MECHANISM_INVALID)
    }
    public func deriveKey(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, baseKey: CK_OBJECT_HANDLE) throws {
        _ = try self.session(session)
        throw CKRError(CKR_MECHANISM_INVALID)
    }
    public func seedRandom(_ session: CK_SESSION_HANDLE, seed: UnsafeRawBufferPointer) throws {
        _ = try self.session(session)
    }
    public func generateRandom(_ session: CK_SESSION_HANDLE, into buffer: UnsafeMutableRawBufferPointer) throws {
        try generateRandomImpl(session, into: buffer)
    }
}
