// C_EncryptInit/Encrypt/EncryptUpdate/EncryptFinal and the decrypt twins: key checks, operation slots and the
// size-query convention (Mechanisms/Operation.swift).
import CP11Kit
import CryptoCore
import N2HE

extension Module {
    /// The key for an operation: a visible secret key (CKR_KEY_HANDLE_INVALID), permitted for `usage`
    /// (CKR_KEY_FUNCTION_NOT_PERMITTED) and for the mechanism (CKA_ALLOWED_MECHANISMS → CKR_MECHANISM_INVALID).
    func operationKey(_ s: Session, _ handle: CK_OBJECT_HANDLE, usage: CK_ATTRIBUTE_TYPE,
                      mechanism: CK_MECHANISM_TYPE, invalidHandle: CK_RV = CKR_KEY_HANDLE_INVALID) throws -> ObjectRecord {
        try requireAllowedMechanism(s, mechanism)
        let ref: ObjectRef
        do { ref = try s.token.object(handle, access: s.access) } catch let e as CKRError where e.rv == CKR_OBJECT_HANDLE_INVALID {
            throw ckr(invalidHandle)
        }
        guard case .secretKey = ref.record.kind else { throw ckr(CKR_KEY_TYPE_INCONSISTENT) }
        guard ref.record.bool(usage) else { throw ckr(CKR_KEY_FUNCTION_NOT_PERMITTED) }
        if case .bytes(let b)? = ref.record.attributes[CK.allowedMechanisms] {
            guard let allowed = Encoding.decodeULongArray(b), allowed.contains(mechanism) else { throw ckr(CKR_MECHANISM_INVALID) }
        }
        // Token policy max_key_uses / max_key_age_days (Policy/PolicyEnforcement.swift).
        try enforceKeyUsePolicy(s, ref, usage: usage, mechanism: mechanism)
        return ref.record
    }

    func keyValue(_ s: Session, _ record: ObjectRecord) throws -> SecretBytes {
        guard let v = try s.token.secret(CKA_VALUE, of: record) else { throw ckr(CKR_KEY_HANDLE_INVALID) }
        return v
    }

    func makeCipher(_ s: Session, mechanism m: Mechanism, key: CK_OBJECT_HANDLE, direction: CipherDirection) throws -> CipherOperation {
        let entry = try Mechanisms.require(m.type, direction == .encrypt ? CKF_ENCRYPT : CKF_DECRYPT)
        let record = try operationKey(s, key, usage: direction == .encrypt ? CKA_ENCRYPT : CKA_DECRYPT, mechanism: m.type)
        switch entry.kind {
        case .n2heCipher:
            guard record.kind == .secretKey(CK.keyN2HE) else { throw ckr(CKR_KEY_TYPE_INCONSISTENT) }
            try Mechanisms.requireNoParameter(m)
            let params = try ObjectFactory.n2heParameters(record.attributes)
            let value = try keyValue(s, record)
            let guardian = direction == .decrypt
                ? try n2heDecryptGuard(s, record, value: value, parameters: params, mechanism: m.type) : nil
            return try N2HECipherOperation(key: value, parameters: params, mechanism: m, direction: direction,
                                           threads: configuration.n2heThreads, decryptGuard: guardian)
        case .aesCipher(let aesMode):
            guard record.kind == .secretKey(CKK_AES) else { throw ckr(CKR_KEY_TYPE_INCONSISTENT) }
            let mode = try AESMechanism.mode(aesMode, for: m)
            return try AESCipherOperation(key: try keyValue(s, record), mode: mode, direction: direction)
        case .keyGeneration, .aesKeyWrap, .digest, .hmac:
            throw ckr(CKR_MECHANISM_INVALID)
        }
    }

    /// The decryption rule of an N2HE key bound to this token: seeds spent in the store's ledger of the key's value
    /// (one transaction, exact across processes and across every copy of the key); refusals and raw decryptions
    /// audited. The ledger needs a login; without one a `seeded-once` key cannot decrypt.
    func n2heDecryptGuard(_ s: Session, _ record: ObjectRecord, value: SecretBytes, parameters: N2HEParameters,
                          mechanism: CK_MECHANISM_TYPE) throws -> N2HEDecryptGuard {
        let token = s.token
        let uid = record.uniqueID
        let label = record.bytes(CKA_LABEL).map { String(decoding: $0, as: UTF8.self) }
        let policy = token.config.policy
        let rule = N2HEDecryptRule(record)
        let ledger: String? = rule == .seededOnce || policy.maxDecryptCallsPerHour != nil ? try token.seedLedgerID(of: value) : nil
        return N2HEDecryptGuard(
            rule: rule,
            maximumSumTerms: parameters.maximumSeededSumTerms,
            spend: { digests in
                guard let ledger else { throw ckr(CKR_USER_NOT_LOGGED_IN) }
                return try token.spendSeeds(ledgerID: ledger, digests: digests)
            },
            refuse: { reason in
                Log.info("token '\(token.config.name)': N2HE decryption refused: \(reason)" + (label.map { " (key '\($0)')" } ?? ""))
                do {
                    try token.audit(AuditEvent(kind: .policyRefusal, outcome: .failure, rv: CKR_ENCRYPTED_DATA_INVALID,
                                               session: s.handle, objectUniqueID: uid, objectLabel: label,
                                               mechanism: mechanism, reason: reason))
                } catch let e as CKRError {
                    return e
                } catch {
                    return CKRError(CKR_DEVICE_ERROR)
                }
                return CKRError(CKR_ENCRYPTED_DATA_INVALID)
            },
            admitRaw: { rows in
                if let limit = policy.maxDecryptCallsPerHour, let ledger {
                    let hour = Int64(token.clock.now() / 3600)
                    let counted = try token.chargeHourlyCall(ledgerID: ledger, hour: hour, limit: limit)
                    if !counted {
                        try self.refuseByPolicy(s, rv: CKR_KEY_FUNCTION_NOT_PERMITTED, uniqueID: uid, label: record.bytes(CKA_LABEL),
                                                mechanism: mechanism,
                                                reason: "max_decrypt_calls_per_hour \(limit) reached for a raw N2HE key")
                    }
                }
                try token.audit(AuditEvent(kind: .rawDecrypt, outcome: .success, session: s.handle, objectUniqueID: uid,
                                           objectLabel: label, mechanism: mechanism, details: ["rows": String(rows)]))
            })
    }

    func cipherInit(_ handle: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE, direction: CipherDirection) throws {
        let s = try session(handle)
        let active = { (o: Operations) in direction == .encrypt ? o.encrypt != nil : o.decrypt != nil }
        if s.ops.withLock({ active($0) }) { throw ckr(CKR_OPERATION_ACTIVE) }
        let op = try makeCipher(s, mechanism: mechanism, key: key, direction: direction)
        try s.ops.withLock { o in
            if active(o) { throw ckr(CKR_OPERATION_ACTIVE) }
            if direction == .encrypt { o.encrypt = ActiveCipher(op) } else { o.decrypt = ActiveCipher(op) }
        }
    }

    /// Runs `body` on the session's active cipher of `direction`; ends the operation when `body` says so or throws.
    private func withCipher(_ handle: CK_SESSION_HANDLE, _ direction: CipherDirection,
                            _ body: (ActiveCipher) throws -> (OutputResult, done: Bool)) throws -> OutputResult {
        let s = try session(handle)
        return try s.ops.withLock { o in
            guard let active = direction == .encrypt ? o.encrypt : o.decrypt else { throw ckr(CKR_OPERATION_NOT_INITIALIZED) }
            func end() { if direction == .encrypt { o.encrypt = nil } else { o.decrypt = nil } }
            do {
                let (r, done) = try body(active)
                if done { end() }
                return r
            } catch {
                end()
                throw error
            }
        }
    }

    func cipherSingle(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer,
                      direction: CipherDirection) throws -> OutputResult {
        try withCipher(handle, direction) { a in
            if a.multipart { throw ckr(CKR_OPERATION_ACTIVE) }
            if a.pending == nil {
                let exact = try a.op.singleOutputLength(input: input)
                if let n = exact, case .buffer(let buf) = output, buf.count >= n,
                   let written = try a.op.single(input, into: buf) {
                    return (.written(written), true)
                }
                let r = try Output.produce(exact: exact, pending: &a.pending, output: output,
                                           secret: a.op.outputIsSecret) { try a.op.single(input) }
                return (r, r.delivered)
            }
            let r = try Output.produce(exact: nil, pending: &a.pending, output: output) { [] }
            return (r, r.delivered)
        }
    }

    func cipherUpdate(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer,
                      direction: CipherDirection) throws -> OutputResult {
        try withCipher(handle, direction) { a in
            if a.pending != nil, !a.multipart { throw ckr(CKR_OPERATION_ACTIVE) }
            a.multipart = true
            let n = try a.op.updateOutputLength(inputLength: input.count)
            switch output {
            case .lengthQuery: return (.lengthRequired(n), false)
            case .buffer(let buf) where buf.count < n: return (.bufferTooSmall(required: n), false)
            default:
                var out = try a.op.update(input)
                defer { if a.op.outputIsSecret { secureZero(&out) } }
                return (Output.deliver(out, to: output), false)
            }
        }
    }

    func cipherFinal(_ handle: CK_SESSION_HANDLE, output: OutputBuffer, direction: CipherDirection) throws -> OutputResult {
        try withCipher(handle, direction) { a in
            a.multipart = true
            let exact = a.pending == nil ? try a.op.finalOutputLength() : nil
            let r = try Output.produce(exact: exact, pending: &a.pending, output: output,
                                       secret: a.op.outputIsSecret) { try a.op.final() }
            return (r, r.delivered)
        }
    }
}
