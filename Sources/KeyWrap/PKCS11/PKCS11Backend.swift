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
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Counters of one backend instance (tests assert on them; operators may log them).
public struct PKCS11BackendStatistics: Sendable, Equatable {
    /// `wrap` calls (after argument checks).
    public var wraps = 0
    /// `unwrap` calls on a well-formed blob.
    public var unwraps = 0
    /// Health checks and KEK creations.
    public var administrative = 0
    /// Sessions opened on the backend token.
    public var sessions = 0
    /// Individual C_* calls made into the backend module (C_OpenSession, C_Login, each C_FindObjects, both
    /// halves of a size-query-then-fetch, …), retries included.
    public var moduleCalls = 0

    /// wraps + unwraps + administrative.
    public var operations: Int { wraps + unwraps + administrative }
}

/// One line of a health report.
public struct PKCS11HealthCheck: Sendable, Equatable, CustomStringConvertible {
    public var name: String
    public var passed: Bool
    /// What was found (never a PIN or key byte).
    public var detail: String

    public var description: String { "[\(passed ? "ok" : "FAIL")] \(name): \(detail)" }
}

/// What `tg-pkcs11 backend check` prints: module, token, KEK properties, and a wrap/unwrap round trip.
public struct PKCS11HealthReport: Sendable, Equatable, CustomStringConvertible {
    public var modulePath: String
    /// C_GetInfo: manufacturer, library description and version ("" if not reached).
    public var moduleInfo: String = ""
    public var token: PKCS11TokenSelector
    /// Token found: label, serial, model, manufacturer (nil if not reached).
    public var tokenLabel: String?
    public var tokenSerial: String?
    public var tokenModel: String?
    public var tokenManufacturer: String?
    public var kek: PKCS11KEKReference
    public var mechanism: PKCS11WrapMechanism
    /// In order; the first failed one is the cause.
    public var checks: [PKCS11HealthCheck] = []
    /// The first failure as a typed error (what `checkHealth()` throws); nil when healthy.
    public var error: KeyWrapError?

    public var isHealthy: Bool { error == nil && checks.allSatisfy(\.passed) }

    public var description: String {
        var lines = ["pkcs11 backend: module \(modulePath)" + (moduleInfo.isEmpty ? "" : " (\(moduleInfo))"),
                     "  token \(token)" + (tokenLabel.map { " → label '\($0)', serial '\(tokenSerial ?? "")', model '\(tokenModel ?? "")', manufacturer '\(tokenManufacturer ?? "")'" } ?? ""),
                     "  KEK \(kek), mechanism \(mechanism)"]
        lines += checks.map { "  \($0)" }
        lines.append(isHealthy ? "  healthy" : "  NOT healthy: \(error.map { "\($0)" } ?? "a check failed")")
        return lines.joined(separator: "\n")
    }
}

public final class PKCS11Backend: KeyWrapBackend {
    public static let kind = "pkcs11"
    public static let blobVersion: UInt8 = 1
    static let macLabel = Array("TG-PKCS11-1".utf8) + [0]
    static let gcmIVLength = 12
    static let maximumRootKeyLength = 512

    public let configuration: PKCS11BackendConfig
    let module: HSMModule
    private let counter: HSMCallCounter
    private let stats: Mutex<PKCS11BackendStatistics>

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
        var header: [UInt8] = [Self.blobVersion, mechanism.blobID]
        let (refKind, refBytes) = kek.encoded
        header.append(refKind)
        pkcs11AppendField(&header, refBytes)
        let iv: [UInt8] = mechanism == .aesGCM ? try pkcs11RandomBytes(Self.gcmIVLength) : []
        let aad = Self.macLabel + context.aad + header
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
        var blob = header
        pkcs11AppendField(&blob, ciphertext)
        let mac = try pkcs11HMAC(rootKey, Self.macLabel + context.aad + blob)
        return blob + mac
    }

    public func unwrap(_ blob: [UInt8], context: WrapContext) throws -> SecretBytes {
        let parsed = try PKCS11ParsedBlob(blob)
        stats.withLock { $0.unwraps += 1 }
        let aad = Self.macLabel + context.aad + Array(blob[0..<parsed.headerLength])
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
        let expected = try pkcs11HMAC(root, Self.macLabel + context.aad + Array(blob[0..<parsed.macOffset]))
        guard constantTimeEquals(expected, blob[parsed.macOffset...]) else { throw KeyWrapError.integrityFailure }
        return root
    }

    /// Throws the first problem `healthReport()` finds.
    public func checkHealth() throws {
        let report = healthReport()
        if let error = report.error { throw error }
        if !report.isHealthy { throw KeyWrapError.misconfigured("health check failed") }
    }

    // MARK: operators

    /// `tg-pkcs11 backend check`: is the module loadable and the token there, does the PIN work, is the
    /// configured KEK present, of the right type, non-extractable (unless allowed), sensitive, allowed to
    /// wrap and unwrap, is the mechanism offered, and does a wrap/unwrap round trip of a random test key work.
    public func healthReport() -> PKCS11HealthReport {
        var report = PKCS11HealthReport(modulePath: configuration.modulePath, token: configuration.token,
                                        kek: configuration.kek, mechanism: configuration.mechanism)
        stats.withLock { $0.administrative += 1 }
        let mechanism = configuration.mechanism
        let kek = configuration.kek
        let allow = configuration.allowExtractableKEK
        let pinSource = configuration.pin
        do {
            let found: PKCS11HealthReport = try session(readWrite: false, login: false) { calls, session, token in
                var r = report
                r.moduleInfo = (try? calls.moduleInfo()) ?? ""
                r.tokenLabel = token.label
                r.tokenSerial = token.serial
                r.tokenModel = token.model
                r.tokenManufacturer = token.manufacturer
                r.checks.append(PKCS11HealthCheck(name: "token", passed: true, detail: "found in slot \(token.slot)"))
                do {
                    let pin = try pinSource.read()
                    try self.call(token, during: "login") { try calls.login(session, pin: pin) }
                    r.checks.append(PKCS11HealthCheck(name: "login", passed: true, detail: "backend user PIN from \(pinSource) accepted"))
                } catch let e as KeyWrapError {
                    r.checks.append(PKCS11HealthCheck(name: "login", passed: false, detail: "\(e)"))
                    r.error = e
                    return r
                }
                let mechs = (try? calls.mechanisms(token.slot)) ?? []
                let needed = Self.mechanismType(mechanism)
                let offered = mechs.contains(CK_MECHANISM_TYPE(needed))
                r.checks.append(PKCS11HealthCheck(name: "mechanism", passed: offered,
                                                  detail: offered ? "\(mechanism) (\(Self.mechanismName(mechanism))) offered by the token"
                                                                  : "\(mechanism) (\(Self.mechanismName(mechanism))) not in C_GetMechanismList"))
                if !offered && r.error == nil {
                    r.error = .misconfigured("backend token \(self.configuration.token) does not offer \(Self.mechanismName(mechanism)) (mechanism \(mechanism))")
                }
                let classes: [(CK_ULONG, String)] = mechanism.isRSA
                    ? [(CK_ULONG(CKO_PUBLIC_KEY), "public key"), (CK_ULONG(CKO_PRIVATE_KEY), "private key")]
                    : [(CK_ULONG(CKO_SECRET_KEY), "secret key")]
                for (cls, what) in classes {
                    let handle: CK_OBJECT_HANDLE
                    do {
                        handle = try self.findKEK(calls, session, token, kek, class: cls, for: mechanism, checkExtractable: false)
                        r.checks.append(PKCS11HealthCheck(name: "kek", passed: true, detail: "\(what) \(kek) found, type matches \(mechanism)"))
                    } catch let e as KeyWrapError {
                        r.checks.append(PKCS11HealthCheck(name: "kek", passed: false, detail: "\(e)"))
                        if r.error == nil { r.error = e }
                        return r
                    }
                    if cls != CK_ULONG(CKO_PUBLIC_KEY) {
                        let extractable = try self.call(token, during: "check") { try calls.bool(session, handle, UInt(CKA_EXTRACTABLE)) }
                        let sensitive = try self.call(token, during: "check") { try calls.bool(session, handle, UInt(CKA_SENSITIVE)) }
                        let extractableOK = extractable == false || allow
                        r.checks.append(PKCS11HealthCheck(
                            name: "kek-extractable", passed: extractableOK,
                            detail: extractable == false ? "CKA_EXTRACTABLE = FALSE"
                                : "CKA_EXTRACTABLE = \(extractable.map { $0 ? "TRUE" : "FALSE" } ?? "unknown")" + (allow ? " (accepted: allow_extractable_kek)" : " (refused; allow_extractable_kek: true to accept)")))
                        if !extractableOK && r.error == nil { r.error = self.extractableError(kek, token) }
                        r.checks.append(PKCS11HealthCheck(name: "kek-sensitive", passed: sensitive == true,
                                                          detail: "CKA_SENSITIVE = \(sensitive.map { $0 ? "TRUE" : "FALSE" } ?? "unknown")"))
                        if sensitive != true && r.error == nil && !allow {
                            r.error = .policyViolation("KEK \(kek) on backend token \(self.configuration.token) is not sensitive (CKA_SENSITIVE = FALSE)")
                        }
                    }
                    let usage: [(UInt, String)]
                    switch (mechanism, cls) {
                    case (.aesKeyWrapPad, _): usage = [(UInt(CKA_WRAP), "CKA_WRAP"), (UInt(CKA_UNWRAP), "CKA_UNWRAP")]
                    case (.aesGCM, _): usage = [(UInt(CKA_ENCRYPT), "CKA_ENCRYPT"), (UInt(CKA_DECRYPT), "CKA_DECRYPT")]
                    case (.rsaOAEPSHA256, CK_ULONG(CKO_PUBLIC_KEY)): usage = [(UInt(CKA_ENCRYPT), "CKA_ENCRYPT")]
                    case (.rsaOAEPSHA256, _): usage = [(UInt(CKA_DECRYPT), "CKA_DECRYPT")]
                    }
                    var missing: [String] = []
                    for (attr, name) in usage {
                        let v = try self.call(token, during: "check") { try calls.bool(session, handle, attr) }
                        if v != true { missing.append(name) }
                    }
                    r.checks.append(PKCS11HealthCheck(name: "kek-usage", passed: missing.isEmpty,
                                                      detail: missing.isEmpty ? usage.map { "\($0.1) = TRUE" }.joined(separator: ", ")
                                                                              : "\(what): \(missing.joined(separator: ", ")) not TRUE"))
                    if !missing.isEmpty && r.error == nil {
                        r.error = .policyViolation("KEK \(kek) (\(what)) on backend token \(self.configuration.token) lacks \(missing.joined(separator: ", "))")
                    }
                }
                return r
            }
            report = found
        } catch let e as KeyWrapError {
            report.checks.append(PKCS11HealthCheck(name: "token", passed: false, detail: "\(e)"))
            report.error = e
            return report
        } catch {
            report.error = .unreachable("\(error)")
            return report
        }
        guard report.error == nil else { return report }
        // Round trip with a random test key and a context no real token has.
        do {
            let probe = try SecretBytes.random(count: 32)
            let ctx = WrapContext(tokenSerial: "HEALTHCHECK", tokenUUID: "00000000000000000000000000000000")
            let blob = try wrap(probe, context: ctx)
            let back = try unwrap(blob, context: ctx)
            let ok = back == probe
            report.checks.append(PKCS11HealthCheck(name: "round-trip", passed: ok,
                                                   detail: ok ? "wrapped and unwrapped a random test key (\(blob.count)-byte blob)" : "unwrap returned a different key"))
            if !ok { report.error = .integrityFailure }
        } catch let e as KeyWrapError {
            report.checks.append(PKCS11HealthCheck(name: "round-trip", passed: false, detail: "\(e)"))
            report.error = e
        } catch {
            report.checks.append(PKCS11HealthCheck(name: "round-trip", passed: false, detail: "\(error)"))
            report.error = .unreachable("\(error)")
        }
        return report
    }

    /// `tg-pkcs11 backend create-kek`: generates an AES-256 KEK on the backend token — CKA_TOKEN, CKA_PRIVATE,
    /// CKA_SENSITIVE = TRUE, CKA_EXTRACTABLE = FALSE, CKA_ENCRYPT/DECRYPT/WRAP/UNWRAP = TRUE, CKA_SIGN/VERIFY/
    /// DERIVE = FALSE — labelled `label`, with CKA_ID `id` if given. Refuses if a key with that label (or id)
    /// already exists (`.misconfigured`). Returns the reference to put in the configuration (`kek_label`).
    @discardableResult
    public func createKEK(label: String, id: [UInt8]? = nil) throws -> PKCS11KEKReference {
        try createKEK(label: label, id: id, extractable: false)
    }

    /// Internal form: `extractable` only for tests of the extractable-KEK refusal.
    @discardableResult
    func createKEK(label: String, id: [UInt8]?, extractable: Bool) throws -> PKCS11KEKReference {
        guard !label.isEmpty, label.utf8.count <= 255 else { throw KeyWrapError.misconfigured("KEK label must be 1...255 bytes") }
        if let id, id.isEmpty || id.count > 255 { throw KeyWrapError.misconfigured("KEK id must be 1...255 bytes") }
        stats.withLock { $0.administrative += 1 }
        return try session(readWrite: true, login: true) { calls, session, token in
            try self.refuseExisting(calls, session, token, label: label, id: id)
            var template: [HSMAttribute] = [
                HSMAttribute(UInt(CKA_CLASS), .ulong(CK_ULONG(CKO_SECRET_KEY))),
                HSMAttribute(UInt(CKA_KEY_TYPE), .ulong(CK_ULONG(CKK_AES))),
                HSMAttribute(UInt(CKA_VALUE_LEN), .ulong(32)),
                HSMAttribute(UInt(CKA_TOKEN), .bool(true)),
                HSMAttribute(UInt(CKA_PRIVATE), .bool(true)),
                HSMAttribute(UInt(CKA_SENSITIVE), .bool(true)),
                HSMAttribute(UInt(CKA_EXTRACTABLE), .bool(extractable)),
                HSMAttribute(UInt(CKA_ENCRYPT), .bool(true)),
                HSMAttribute(UInt(CKA_DECRYPT), .bool(true)),
                HSMAttribute(UInt(CKA_WRAP), .bool(true)),
                HSMAttribute(UInt(CKA_UNWRAP), .bool(true)),
                HSMAttribute(UInt(CKA_SIGN), .bool(false)),
                HSMAttribute(UInt(CKA_VERIFY), .bool(false)),
                HSMAttribute(UInt(CKA_DERIVE), .bool(false)),
                HSMAttribute(UInt(CKA_LABEL), .bytes(Array(label.utf8))),
            ]
            if let id { template.append(HSMAttribute(UInt(CKA_ID), .bytes(id))) }
            _ = try self.call(token, during: "create-kek") {
                try calls.generateKey(session, mechanism: UInt(CKM_AES_KEY_GEN), template)
            }
            return .label(label)
        }
    }

    /// Internal (tests): an RSA key pair for rsa-oaep-sha256 (public: encrypt/wrap; private: sensitive,
    /// non-extractable, decrypt/unwrap), both labelled `label`.
    func generateRSAKEK(label: String, id: [UInt8]? = nil, bits: Int = 2048) throws {
        stats.withLock { $0.administrative += 1 }
        try session(readWrite: true, login: true) { calls, session, token in
            try self.refuseExisting(calls, session, token, label: label, id: id)
            var pub: [HSMAttribute] = [
                HSMAttribute(UInt(CKA_TOKEN), .bool(true)), HSMAttribute(UInt(CKA_ENCRYPT), .bool(true)),
                HSMAttribute(UInt(CKA_WRAP), .bool(true)), HSMAttribute(UInt(CKA_VERIFY), .bool(false)),
                HSMAttribute(UInt(CKA_MODULUS_BITS), .ulong(CK_ULONG(bits))),
                HSMAttribute(UInt(CKA_PUBLIC_EXPONENT), .bytes([1, 0, 1])),
                HSMAttribute(UInt(CKA_LABEL), .bytes(Array(label.utf8))),
            ]
            var priv: [HSMAttribute] = [
                HSMAttribute(UInt(CKA_TOKEN), .bool(true)), HSMAttribute(UInt(CKA_PRIVATE), .bool(true)),
                HSMAttribute(UInt(CKA_SENSITIVE), .bool(true)), HSMAttribute(UInt(CKA_EXTRACTABLE), .bool(false)),
                HSMAttribute(UInt(CKA_DECRYPT), .bool(true)), HSMAttribute(UInt(CKA_UNWRAP), .bool(true)),
                HSMAttribute(UInt(CKA_SIGN), .bool(false)),
                HSMAttribute(UInt(CKA_LABEL), .bytes(Array(label.utf8))),
            ]
            if let id {
                pub.append(HSMAttribute(UInt(CKA_ID), .bytes(id)))
                priv.append(HSMAttribute(UInt(CKA_ID), .bytes(id)))
            }
            _ = try self.call(token, during: "create-kek") {
                try calls.generateKeyPair(session, mechanism: UInt(CKM_RSA_PKCS_KEY_PAIR_GEN), publicTemplate: pub, privateTemplate: priv)
            }
        }
    }

    // MARK: internals

    private func refuseExisting(_ calls: HSMCalls, _ session: CK_SESSION_HANDLE, _ token: HSMTokenInfo,
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
                throw KeyWrapError.misconfigured("an object with id \(pkcs11Hex(id)) already exists on backend token \(configuration.token)")
            }
        }
    }

    private func extractableError(_ kek: PKCS11KEKReference, _ token: HSMTokenInfo) -> KeyWrapError {
        .policyViolation("KEK \(kek) on backend token \(configuration.token) is extractable (CKA_EXTRACTABLE = TRUE); "
                         + "refused unless the configuration sets allow_extractable_kek: true")
    }

    /// Finds exactly one key of `cls` matching `kek`, checks its key type against `mechanism` and (unless
    /// told not to) that it is not extractable.
    private func findKEK(_ calls: HSMCalls, _ session: CK_SESSION_HANDLE, _ token: HSMTokenInfo, _ kek: PKCS11KEKReference,
                         class cls: UInt, for mechanism: PKCS11WrapMechanism) throws -> CK_OBJECT_HANDLE {
        try findKEK(calls, session, token, kek, class: CK_ULONG(cls), for: mechanism, checkExtractable: true)
    }

    private func findKEK(_ calls: HSMCalls, _ session: CK_SESSION_HANDLE, _ token: HSMTokenInfo, _ kek: PKCS11KEKReference,
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
    private func operation<R: Sendable>(_ what: String, _ body: (HSMCalls, CK_SESSION_HANDLE, HSMTokenInfo) throws -> R) throws -> R {
        try session(readWrite: false, login: true, body)
    }

    /// Opens a session on the configured token (under the module lock), optionally logs in, runs `body`, closes
    /// the session. If the token is not found or the module lost its initialisation, the module is
    /// re-initialised (slots rescanned) and the operation retried; a device error is retried too — at most
    /// 3 retries with 20/100/300 ms back-off, then the typed error.
    @discardableResult
    private func session<R: Sendable>(readWrite: Bool, login: Bool,
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
                        let pin = try self.configuration.pin.read()
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
    private func locateToken(_ calls: HSMCalls, _ state: inout HSMModule.State) throws -> HSMTokenInfo {
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
    private func call<R>(_ token: HSMTokenInfo, during step: String, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let e as HSMCallError {
            throw classify(e, step: step)
        }
    }

    private func classify(_ e: HSMCallError, step: String) -> Error {
        let where_ = "backend token \(configuration.token) (module \(configuration.modulePath)): \(e.function) returned \(HSMReturnValue.name(e.rv)) during \(step)"
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

/// A failure for which `session` may reset the module and/or retry once.
struct PKCS11RecoverableFailure: Error {
    let error: KeyWrapError
    let resetModule: Bool
    let transient: Bool
}

/// The parsed frame of a version-1 blob.
struct PKCS11ParsedBlob {
    let mechanism: PKCS11WrapMechanism
    let kek: PKCS11KEKReference
    let headerLength: Int
    let payload: [UInt8]
    let macOffset: Int

    init(_ blob: [UInt8]) throws {
        guard blob.count >= 5 + 2 + 32, blob[0] == PKCS11Backend.blobVersion,
              let mechanism = PKCS11WrapMechanism(blobID: blob[1]) else { throw KeyWrapError.integrityFailure }
        let refLength = Int(blob[3]) << 8 | Int(blob[4])
        let refEnd = 5 + refLength
        guard refEnd + 2 <= blob.count,
              let kek = PKCS11KEKReference(kind: blob[2], bytes: blob[5..<refEnd]) else { throw KeyWrapError.integrityFailure }
        let payloadLength = Int(blob[refEnd]) << 8 | Int(blob[refEnd + 1])
        let payloadStart = refEnd + 2
        guard payloadLength > 0, payloadStart + payloadLength + 32 == blob.count else { throw KeyWrapError.integrityFailure }
        self.mechanism = mechanism
        self.kek = kek
        self.headerLength = refEnd
        self.payload = Array(blob[payloadStart..<(payloadStart + payloadLength)])
        self.macOffset = payloadStart + payloadLength
    }
}

private func pkcs11AppendField(_ out: inout [UInt8], _ bytes: [UInt8]) {
    let n = min(bytes.count, Int(UInt16.max))
    out.append(UInt8(truncatingIfNeeded: n >> 8))
    out.append(UInt8(truncatingIfNeeded: n))
    out.append(contentsOf: bytes.prefix(n))
}

private func pkcs11RandomBytes(_ n: Int) throws -> [UInt8] {
    do { return try SecureRandom.bytes(n) } catch { throw KeyWrapError.unreachable("random generator failed: \(error)") }
}

private func pkcs11HMAC(_ key: SecretBytes, _ data: [UInt8]) throws -> [UInt8] {
    do { return try HMAC.authenticate(.sha256, key: key, data: data) } catch {
        throw KeyWrapError.misconfigured("HMAC unavailable: \(error)")
    }
}
