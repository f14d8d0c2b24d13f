// The `pkcs11` key-wrapping backend (DESIGN §5, docs/backends/pkcs11.md): the token's root key is wrapped
// under a KEK that lives in another PKCS#11 token (SoftHSM2 in tests; Luna, nShield in production).
//
// Called only at C_InitToken (wrap), once per login (unwrap), at KEK rotation (wrap) and by operators
// (health, create-kek) — never on the per-operation path. Each call opens one session on the backend
// token, logs in as CKU_USER (PIN read from the configured env variable / file at that moment), does its
// work and closes the session; all calls into one module are serialised by the module's lock.
//
// Blob (version 1), all integers big-endian:
//
//     0x01 || mech(1) || kekRefKind(1) || u16 len || kekRef || u16 len || payload || mac[32]
//
// mech: 1 aes-key-wrap-pad (payload = C_WrapKey output), 2 aes-gcm (payload = iv[12] || C_Encrypt output,
// AAD = bindingInput), 3 rsa-oaep-sha256 (payload = C_Encrypt output). kekRefKind: 1 CKA_LABEL (UTF-8),
// 2 CKA_ID. mac = HMAC-SHA-256(key: root key, "TG-PKCS11-1" || 0x00 || WrapContext.aad || every blob byte
// before the mac): binds the blob to its token (KWP and OAEP carry no AAD) and detects any edit of the frame.
// Unwrap uses the mechanism and KEK named in the blob, so a rotation needs no configuration change on other
// hosts as long as they reach the same backend token.
import CP11Kit
import CryptoCore
import PKCS11Names
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class PKCS11Backend: KeyWrapBackend {
    public static let kind = "pkcs11"
    public static let blobVersion: UInt8 = 1
    static let macLabel = Array("TG-PKCS11-1".utf8) + [0]
    static let gcmIVLength = 12
    static let maximumRootKeyLength = 512

    public let configuration: PKCS11BackendConfig
    let module: HSMModule
    let counter: HSMCallCounter
    let stats: Mutex<PKCS11BackendStatistics>

    /// Loads the backend module (dlopen; a wrong path is `.misconfigured` naming the path). Does not contact
    /// the token: that happens at the first wrap/unwrap/health call.
    public convenience init(configuration: PKCS11BackendConfig) throws {
        self.init(configuration: configuration, module: try HSMModuleRegistry.module(path: configuration.modulePath))
    }

    /// From `BackendConfiguration.options` (see `PKCS11BackendConfig.init(options:)`). Kind must be "pkcs11".
    public convenience init(configuration: BackendConfiguration) throws {
        try self.init(configuration: PKCS11BackendConfig(options: configuration.options(forKind: Self.kind)))
    }

    init(configuration: PKCS11BackendConfig, module: HSMModule) {
        self.configuration = configuration
        self.module = module
        self.counter = HSMCallCounter()
        self.stats = Mutex(PKCS11BackendStatistics())
    }

    /// The same backend (module, token, PIN source) wrapping under another KEK — what `rotate-kek --new-kek`
    /// passes to `TokenVault.rewrapRootKey(using:backend:)`.
    public func withKEK(_ kek: PKCS11KEKReference, mechanism: PKCS11WrapMechanism? = nil) -> PKCS11Backend {
        var c = configuration
        c.kek = kek
        if let mechanism { c.mechanism = mechanism }
        return PKCS11Backend(configuration: c, module: module)
    }

    /// kind "pkcs11"; keyID = the backend token ("token-label=…" / "token-serial=…"); keyVersion = the KEK new
    /// wraps use ("kek-label=…" / "kek-id=…"). TokenVault checks kind and keyID at login, so rotating to
    /// another KEK on the same backend token keeps every host's configuration valid.
    public var descriptor: BackendDescriptor {
        BackendDescriptor(kind: Self.kind, keyID: configuration.token.description, keyVersion: configuration.kek.description)
    }

    /// Counters since creation (or the last `resetStatistics()`).
    public var statistics: PKCS11BackendStatistics {
        var s = stats.withLock { $0 }
        s.moduleCalls = counter.value
        return s
    }

    public func resetStatistics() {
        stats.withLock { $0 = PKCS11BackendStatistics() }
        counter.calls.store(0, ordering: .relaxed)
    }

    // MARK: KeyWrapBackend

    public func wrap(_ rootKey: SecretBytes, context: WrapContext) throws -> [UInt8] {
        guard rootKey.count > 0, rootKey.count <= Self.maximumRootKeyLength else {
            throw KeyWrapError.misconfigured("root key length \(rootKey.count) not supported")
        }
        stats.withLock { $0.wraps += 1 }
        let kek = configuration.kek
        let mechanism = configuration.mechanism
        var blob = BlobWriter(version: Self.blobVersion)
        blob.append(byte: mechanism.blobID)
        let (refKind, refBytes) = kek.encoded
        blob.append(byte: refKind)
        try blob.append(field: refBytes)
        let iv: [UInt8] = mechanism == .aesGCM ? try pkcs11RandomBytes(Self.gcmIVLength) : []
        let aad = Self.macLabel + context.aad + blob.bytes
        let ciphertext: [UInt8] = try operation("wrap") { calls, session, token in
            switch mechanism {
            case .aesKeyWrapPad:
                let key = try self.findKEK(calls, session, token, kek, class: CKO_SECRET_KEY, for: mechanism)
                let temporary = try self.call(token, during: "wrap") {
                    try calls.create(session, [
                        HSMAttribute(UInt(CKA_CLASS), .ulong(CK_ULONG(CKO_SECRET_KEY))),
                        HSMAttribute(UInt(CKA_KEY_TYPE), .ulong(CK_ULONG(CKK_GENERIC_SECRET))),
                        HSMAttribute(UInt(CKA_TOKEN), .bool(false)),
                        HSMAttribute(UInt(CKA_PRIVATE), .bool(true)),
                        HSMAttribute(UInt(CKA_SENSITIVE), .bool(true)),
                        HSMAttribute(UInt(CKA_EXTRACTABLE), .bool(true)),
                        HSMAttribute(UInt(CKA_VALUE), .secret(rootKey)),
                    ])
                }
                defer { calls.destroy(session, temporary) }
                var mech = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_AES_KEY_WRAP_PAD), pParameter: nil, ulParameterLen: 0)
                return try self.call(token, during: "wrap") {
                    try calls.wrapKey(session, mechanism: &mech, wrappingKey: key, key: temporary)
                }
            case .aesGCM:
                let key = try self.findKEK(calls, session, token, kek, class: CKO_SECRET_KEY, for: mechanism)
                let out = try self.call(token, during: "wrap") {
                    try Self.withGCMParameters(iv: iv, aad: aad) { mech in
                        try calls.encrypt(session, mechanism: &mech, key: key, input: rootKey)
                    }
                }
                return iv + out
            case .rsaOAEPSHA256:
                let key = try self.findKEK(calls, session, token, kek, class: CKO_PUBLIC_KEY, for: mechanism)
                return try self.call(token, during: "wrap") {
                    try Self.withOAEPParameters { mech in try calls.encrypt(session, mechanism: &mech, key: key, input: rootKey) }
                }
            }
        }
        try blob.append(field: ciphertext)
        return try blob.sealed(label: Self.macLabel, rootKey: rootKey, context: context)
    }

    public func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes {
        let parsed = try PKCS11ParsedBlob(blob)
        stats.withLock { $0.unwraps += 1 }
        let aad = Self.macLabel + context.aad + parsed.header
        let root: SecretBytes = try operation("unwrap") { calls, session, token in
            switch parsed.mechanism {
            case .aesKeyWrapPad:
                let key = try self.findKEK(calls, session, token, parsed.kek, class: CKO_SECRET_KEY, for: parsed.mechanism)
                var mech = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_AES_KEY_WRAP_PAD), pParameter: nil, ulParameterLen: 0)
                let handle = try self.call(token, during: "unwrap") {
                    try calls.unwrapKey(session, mechanism: &mech, unwrappingKey: key, wrapped: parsed.payload, template: [
                        HSMAttribute(UInt(CKA_CLASS), .ulong(CK_ULONG(CKO_SECRET_KEY))),
                        HSMAttribute(UInt(CKA_KEY_TYPE), .ulong(CK_ULONG(CKK_GENERIC_SECRET))),
                        HSMAttribute(UInt(CKA_TOKEN), .bool(false)),
                        HSMAttribute(UInt(CKA_PRIVATE), .bool(true)),
                        HSMAttribute(UInt(CKA_SENSITIVE), .bool(false)),
                        HSMAttribute(UInt(CKA_EXTRACTABLE), .bool(true)),
                    ])
                }
                defer { calls.destroy(session, handle) }
                return try self.call(token, during: "unwrap") {
                    try calls.secretValue(session, handle, maxLength: Self.maximumRootKeyLength)
                }
            case .aesGCM:
                guard parsed.payload.count > Self.gcmIVLength + 16 else { throw KeyWrapError.integrityFailure }
                let key = try self.findKEK(calls, session, token, parsed.kek, class: CKO_SECRET_KEY, for: parsed.mechanism)
                let iv = Array(parsed.payload[0..<Self.gcmIVLength])
                let ct = Array(parsed.payload[Self.gcmIVLength...])
                return try self.call(token, during: "unwrap") {
                    try Self.withGCMParameters(iv: iv, aad: aad) { mech in
                        try calls.decrypt(session, mechanism: &mech, key: key, input: ct)
                    }
                }
            case .rsaOAEPSHA256:
                let key = try self.findKEK(calls, session, token, parsed.kek, class: CKO_PRIVATE_KEY, for: parsed.mechanism)
                return try self.call(token, during: "unwrap") {
                    try Self.withOAEPParameters { mech in try calls.decrypt(session, mechanism: &mech, key: key, input: parsed.payload) }
                }
            }
        }
        guard root.count > 0, root.count <= Self.maximumRootKeyLength else { throw KeyWrapError.integrityFailure }
        guard try parsed.frame.macVerifies(label: Self.macLabel, rootKey: root, context: context) else {
            throw KeyWrapError.integrityFailure
        }
        return root
    }

    /// Throws the first problem `healthReport()` finds.
    public func checkHealth() throws {
        let report = healthReport()
        if let error = report.error { throw error }
        if !report.isHealthy { throw KeyWrapError.misconfigured("health check failed") }
    }

    // MARK: internals

    func refuseExisting(_ calls: HSMCalls, _ session: CK_SESSION_HANDLE, _ token: HSMTokenInfo,
                                label: String, id: [UInt8]?) throws {
        let byLabel = try call(token, during: "create-kek") {
            try calls.find(session, [HSMAttribute(UInt(CKA_LABEL), .bytes(Array(label.utf8)))], limit: 1)
        }
        guard byLabel.isEmpty else {
            throw KeyWrapError.misconfigured("an object labelled '\(label)' already exists on backend token \(configuration.token)")
        }
        if let id {
            let byID = try call(token, during: "create-kek") {
                try calls.find(session, [HSMAttribute(UInt(CKA_ID), .bytes(id))], limit: 1)
            }
            guard byID.isEmpty else {
                throw KeyWrapError.misconfigured("an object with id \(Hex.encode(id)) already exists on backend token \(configuration.token)")
            }
        }
    }

    func extractableError(_ kek: PKCS11KEKReference, _ token: HSMTokenInfo) -> KeyWrapError {
        .policyViolation("KEK \(kek) on backend token \(configuration.token) is extractable (CKA_EXTRACTABLE = TRUE); "
                         + "refused unless the configuration sets allow_extractable_kek: true")
    }

    /// Finds exactly one key of `cls` matching `kek`, checks its key type against `mechanism` and (unless
    /// told not to) that it is not extractable.
    func findKEK(_ calls: HSMCalls, _ session: CK_SESSION_HANDLE, _ token: HSMTokenInfo, _ kek: PKCS11KEKReference,
                         class cls: UInt, for mechanism: PKCS11WrapMechanism) throws -> CK_OBJECT_HANDLE {
        try findKEK(calls, session, token, kek, class: CK_ULONG(cls), for: mechanism, checkExtractable: true)
    }

    func findKEK(_ calls: HSMCalls, _ session: CK_SESSION_HANDLE, _ token: HSMTokenInfo, _ kek: PKCS11KEKReference,
                         class cls: CK_ULONG, for mechanism: PKCS11WrapMechanism, checkExtractable: Bool) throws -> CK_OBJECT_HANDLE {
        let what = cls == CK_ULONG(CKO_SECRET_KEY) ? "secret key" : cls == CK_ULONG(CKO_PUBLIC_KEY) ? "public key" : "private key"
        let handles = try call(token, during: "find KEK") {
            try calls.find(session, [HSMAttribute(UInt(CKA_CLASS), .ulong(cls)), kek.attribute], limit: 4)
        }
        guard let handle = handles.first else {
            throw KeyWrapError.keyNotFound("no \(what) with \(kek) on backend token \(configuration.token) (module \(configuration.modulePath))")
        }
        guard handles.count == 1 else {
            throw KeyWrapError.misconfigured("\(handles.count) \(what)s match \(kek) on backend token \(configuration.token); the KEK must be unique")
        }
        let keyType = try call(token, during: "find KEK") { try calls.ulong(session, handle, UInt(CKA_KEY_TYPE)) }
        let expected = mechanism.isRSA ? CK_ULONG(CKK_RSA) : CK_ULONG(CKK_AES)
        guard keyType == expected else {
            throw KeyWrapError.misconfigured("KEK \(kek) on backend token \(configuration.token) is not an \(mechanism.isRSA ? "RSA" : "AES") key, as mechanism \(mechanism) requires")
        }
        if checkExtractable && cls != CK_ULONG(CKO_PUBLIC_KEY) && !configuration.allowExtractableKEK {
            let extractable = try call(token, during: "find KEK") { try calls.bool(session, handle, UInt(CKA_EXTRACTABLE)) }
            guard extractable == false else { throw extractableError(kek, token) }
        }
        return handle
    }

    /// A logged-in session for one backend operation (see `session`).
    func operation<R: Sendable>(_ what: String, _ body: (HSMCalls, CK_SESSION_HANDLE, HSMTokenInfo) throws -> R) throws -> R {
        try session(readWrite: false, login: true, body)
    }

    /// Opens a session on the configured token (under the module lock), optionally logs in, runs `body`, closes
    /// the session. If the token is not found or the module lost its initialisation, the module is
    /// re-initialised (slots rescanned) and the operation retried; a device error is retried too — at most
    /// 3 retries with 20/100/300 ms back-off, then the typed error.
    @discardableResult
    func session<R: Sendable>(readWrite: Bool, login: Bool,
                                      _ body: (HSMCalls, CK_SESSION_HANDLE, HSMTokenInfo) throws -> R) throws -> R {
        let calls = HSMCalls(module: module, counter: counter)
        var lastError: KeyWrapError = .unreachable("no attempt made")
        // Bounded: `Self.retryDelays.count + 1` attempts at most.
        for attempt in 0...Self.retryDelays.count {
            do {
                return try module.withLock { state in
                    let token = try self.locateToken(calls, &state)
                    let session = try self.call(token, during: "open session") { try calls.openSession(token.slot, readWrite: readWrite) }
                    self.stats.withLock { $0.sessions += 1 }
                    defer { calls.closeSession(session) }
                    if login {
                        let pin = try self.configuration.pin.read("backend PIN", maximumLength: PKCS11BackendConfig.maximumPINLength)
                        try self.call(token, during: "login") { try calls.login(session, pin: pin) }
                    }
                    return try body(calls, session, token)
                }
            } catch {
                let failure: Error = (error as? HSMCallError).map { classify($0, step: "backend call") } ?? error
                guard let e = failure as? PKCS11RecoverableFailure else { throw failure }
                lastError = e.error
                guard attempt < Self.retryDelays.count else { break }
                if e.resetModule { module.state.withLock { module.reset(&$0) } }
                usleep(Self.retryDelays[attempt])
            }
        }
        throw lastError
    }

    /// Back-off before the 2nd, 3rd and 4th attempt (microseconds): a token another process is rewriting
    /// (SoftHSM2 file store), a network HSM's transient CKR_DEVICE_ERROR, a token that was re-inserted.
    static let retryDelays: [UInt32] = [20_000, 100_000, 300_000]

    /// The slot holding the configured token: the cached slot if C_GetTokenInfo still shows that token there,
    /// otherwise a scan of the slots with a token present.
    func locateToken(_ calls: HSMCalls, _ state: inout HSMModule.State) throws -> HSMTokenInfo {
        let selector = configuration.token
        let key = selector.description
        let unknown = HSMTokenInfo(slot: 0, label: "", serial: "", model: "", manufacturer: "", flags: 0)
        if let slot = state.slotCache[key], let info = try? calls.tokenInfo(slot), selector.matches(info) {
            return info
        }
        state.slotCache[key] = nil
        let slots = try call(unknown, during: "list slots") { try calls.slotList() }
        var seen: [String] = []
        for slot in slots.prefix(4096) {
            guard let info = try? calls.tokenInfo(slot) else { continue }
            if selector.matches(info) {
                state.slotCache[key] = slot
                return info
            }
            if seen.count < 8 { seen.append("'\(info.label)'/\(info.serial)") }
        }
        throw PKCS11RecoverableFailure(error: .removed("backend token \(selector) not found in module \(configuration.modulePath) "
                                                 + "(tokens present: \(seen.isEmpty ? "none" : seen.joined(separator: ", ")))"),
                                 resetModule: true, transient: false)
    }

    /// Runs one or more PKCS#11 calls, turning `HSMCallError` into a typed `KeyWrapError` (wrapped in
    /// `PKCS11RecoverableFailure` when a retry may help).
    @discardableResult
    func call<R>(_ token: HSMTokenInfo, during step: String, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let e as HSMCallError {
            throw classify(e, step: step)
        }
    }

    func classify(_ e: HSMCallError, step: String) -> Error {
        let where_ = "backend token \(configuration.token) (module \(configuration.modulePath)): \(e.function) returned \(ReturnValueNames.name(of: e.rv)) during \(step)"
        let rv = e.rv
        func any(_ values: [Int]) -> Bool { values.contains { CK_RV($0) == rv } }
        if any([Int(CKR_PIN_INCORRECT), Int(CKR_PIN_INVALID), Int(CKR_PIN_LEN_RANGE), Int(CKR_PIN_EXPIRED), Int(CKR_PIN_LOCKED),
                Int(CKR_USER_PIN_NOT_INITIALIZED), Int(CKR_USER_TYPE_INVALID)]) {
            return KeyWrapError.authenticationFailed("backend user PIN (from \(configuration.pin)) refused by \(where_)")
        }
        if any([Int(CKR_TOKEN_NOT_PRESENT), Int(CKR_DEVICE_REMOVED), Int(CKR_SLOT_ID_INVALID), Int(CKR_TOKEN_NOT_RECOGNIZED),
                Int(CKR_SESSION_CLOSED), Int(CKR_SESSION_HANDLE_INVALID), Int(CKR_CRYPTOKI_NOT_INITIALIZED)]) {
            return PKCS11RecoverableFailure(error: .removed(where_), resetModule: true, transient: false)
        }
        if step == "unwrap" && any([Int(CKR_ENCRYPTED_DATA_INVALID), Int(CKR_ENCRYPTED_DATA_LEN_RANGE), Int(CKR_WRAPPED_KEY_INVALID),
                                    Int(CKR_WRAPPED_KEY_LEN_RANGE), Int(CKR_GENERAL_ERROR), Int(CKR_DATA_INVALID),
                                    Int(CKR_DATA_LEN_RANGE), Int(CKR_FUNCTION_FAILED)]) {
            // SoftHSM2 answers CKR_GENERAL_ERROR for a KWP blob that fails its integrity check.
            return KeyWrapError.integrityFailure
        }
        if any([Int(CKR_KEY_FUNCTION_NOT_PERMITTED), Int(CKR_KEY_UNEXTRACTABLE), Int(CKR_KEY_NOT_WRAPPABLE)]) {
            return KeyWrapError.policyViolation(where_)
        }
        if any([Int(CKR_MECHANISM_INVALID), Int(CKR_MECHANISM_PARAM_INVALID), Int(CKR_ARGUMENTS_BAD),
                Int(CKR_KEY_TYPE_INCONSISTENT), Int(CKR_WRAPPING_KEY_TYPE_INCONSISTENT), Int(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
                Int(CKR_KEY_SIZE_RANGE), Int(CKR_TEMPLATE_INCONSISTENT), Int(CKR_TEMPLATE_INCOMPLETE),
                Int(CKR_ATTRIBUTE_VALUE_INVALID), Int(CKR_ATTRIBUTE_TYPE_INVALID), Int(CKR_FUNCTION_NOT_SUPPORTED)]) {
            return KeyWrapError.misconfigured("\(where_) — the backend does not support mechanism \(configuration.mechanism) this way")
        }
        // Transient: a network HSM's device error; SoftHSM2's file store answers CKR_GENERAL_ERROR while another
        // process rewrites the token file (outside unwrap, where it means a bad blob — handled above).
        if any([Int(CKR_DEVICE_ERROR), Int(CKR_DEVICE_MEMORY), Int(CKR_SESSION_COUNT), Int(CKR_GENERAL_ERROR),
                Int(CKR_FUNCTION_FAILED)]) {
            return PKCS11RecoverableFailure(error: .unreachable(where_), resetModule: false, transient: true)
        }
        return KeyWrapError.unreachable(where_)
    }

    static func mechanismType(_ m: PKCS11WrapMechanism) -> UInt {
        switch m {
        case .aesKeyWrapPad: return UInt(CKM_AES_KEY_WRAP_PAD)
        case .aesGCM: return UInt(CKM_AES_GCM)
        case .rsaOAEPSHA256: return UInt(CKM_RSA_PKCS_OAEP)
        }
    }

    static func mechanismName(_ m: PKCS11WrapMechanism) -> String {
        switch m {
        case .aesKeyWrapPad: return "CKM_AES_KEY_WRAP_PAD"
        case .aesGCM: return "CKM_AES_GCM"
        case .rsaOAEPSHA256: return "CKM_RSA_PKCS_OAEP"
        }
    }

    static func withGCMParameters<R>(iv: [UInt8], aad: [UInt8], _ body: (inout CK_MECHANISM) throws -> R) rethrows -> R {
        var ivCopy = iv
        var aadCopy = aad
        return try ivCopy.withUnsafeMutableBufferPointer { ivp in
            try aadCopy.withUnsafeMutableBufferPointer { aadp in
                var params = CK_GCM_PARAMS()
                params.pIv = ivp.baseAddress
                params.ulIvLen = CK_ULONG(ivp.count)
                params.ulIvBits = CK_ULONG(ivp.count * 8)
                params.pAAD = aadp.baseAddress
                params.ulAADLen = CK_ULONG(aadp.count)
                params.ulTagBits = 128
                return try withUnsafeMutablePointer(to: &params) { p in
                    var mech = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_AES_GCM), pParameter: UnsafeMutableRawPointer(p),
                                            ulParameterLen: CK_ULONG(MemoryLayout<CK_GCM_PARAMS>.size))
                    return try body(&mech)
                }
            }
        }
    }

    static func withOAEPParameters<R>(_ body: (inout CK_MECHANISM) throws -> R) rethrows -> R {
        var params = CK_RSA_PKCS_OAEP_PARAMS()
        params.hashAlg = CK_MECHANISM_TYPE(CKM_SHA256)
        params.mgf = CK_RSA_PKCS_MGF_TYPE(CKG_MGF1_SHA256)
        params.source = CK_RSA_PKCS_OAEP_SOURCE_TYPE(CKZ_DATA_SPECIFIED)
        params.pSourceData = nil
        params.ulSourceDataLen = 0
        return try withUnsafeMutablePointer(to: &params) { p in
            var mech = CK_MECHANISM(mechanism: CK_MECHANISM_TYPE(CKM_RSA_PKCS_OAEP), pParameter: UnsafeMutableRawPointer(p),
                                    ulParameterLen: CK_ULONG(MemoryLayout<CK_RSA_PKCS_OAEP_PARAMS>.size))
            return try body(&mech)
        }
    }
}

private func pkcs11RandomBytes(_ n: Int) throws -> [UInt8] {
    do { return try SecureRandom.bytes(n) } catch { throw KeyWrapError.unreachable("random generator failed: \(error)") }
}
