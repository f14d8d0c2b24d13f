// The operator side of the PKCS#11 backend (tg-pkcs11 backend check / create-kek / rotate-kek): health report
// and KEK management. The KeyWrapBackend side is PKCS11Backend.swift.
import CP11Kit
import CryptoCore
import PKCS11Names
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension PKCS11Backend {
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
                    let pin = try pinSource.read("backend PIN", maximumLength: PKCS11BackendConfig.maximumPINLength)
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
}
