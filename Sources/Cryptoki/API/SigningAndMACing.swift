// PKCS#11 §5.11–5.12 signing and MACing, verifying: C_Sign*, C_Verify* with the HMAC mechanisms. MAC lengths
// are fixed, so size queries never compute.
import CP11Kit
import CryptoCore

extension Module {
    public func signInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        try macInit(session, mechanism: mechanism, key: key, verify: false)
        noteKeyUse(session, key: key, operation: "sign", mechanism: mechanism.type)
    }
    public func sign(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try signSingle(session, input: input, output: output)
    }
    public func signUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer) throws {
        try macUpdate(session, input: input, verify: false)
    }
    public func signFinal(_ session: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try signFinalPart(session, output: output)
    }
    public func verifyInit(_ session: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE) throws {
        try macInit(session, mechanism: mechanism, key: key, verify: true)
        noteKeyUse(session, key: key, operation: "verify", mechanism: mechanism.type)
    }
    /// Throws CKR_SIGNATURE_INVALID / CKR_SIGNATURE_LEN_RANGE for a bad signature; ends the operation.
    public func verify(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, signature: UnsafeRawBufferPointer) throws {
        try verifySingle(session, input: input, signature: signature)
    }
    public func verifyUpdate(_ session: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer) throws {
        try macUpdate(session, input: input, verify: true)
    }
    public func verifyFinal(_ session: CK_SESSION_HANDLE, signature: UnsafeRawBufferPointer) throws {
        try verifyFinalPart(session, signature: signature)
    }


    func macInit(_ handle: CK_SESSION_HANDLE, mechanism: Mechanism, key: CK_OBJECT_HANDLE, verify: Bool) throws {
        let s = try session(handle)
        try Mechanisms.require(mechanism.type, verify ? CKF_VERIFY : CKF_SIGN)
        if s.ops.withLock({ verify ? $0.verify != nil : $0.sign != nil }) { throw ckr(CKR_OPERATION_ACTIVE) }
        let record = try operationKey(s, key, usage: verify ? CKA_VERIFY : CKA_SIGN, mechanism: mechanism.type)
        guard case .secretKey(let kt) = record.kind, HMACMechanism.accepts(keyType: kt, mechanism: mechanism.type) else {
            throw ckr(CKR_KEY_TYPE_INCONSISTENT)
        }
        let op = try MACOperation(mechanism, key: try keyValue(s, record))
        try s.ops.withLock { o in
            if verify {
                if o.verify != nil { throw ckr(CKR_OPERATION_ACTIVE) }
                o.verify = op
            } else {
                if o.sign != nil { throw ckr(CKR_OPERATION_ACTIVE) }
                o.sign = op
            }
        }
    }

    private func withMAC<R>(_ handle: CK_SESSION_HANDLE, verify: Bool, _ body: (MACOperation) throws -> (R, done: Bool)) throws -> R {
        let s = try session(handle)
        return try s.ops.withLock { o in
            guard let m = verify ? o.verify : o.sign else { throw ckr(CKR_OPERATION_NOT_INITIALIZED) }
            func end() { if verify { o.verify = nil } else { o.sign = nil } }
            do {
                let (r, done) = try body(m)
                if done { end() }
                return r
            } catch {
                end()
                throw error
            }
        }
    }

    private func signSingle(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try withMAC(handle, verify: false) { m in
            if m.multipart { throw ckr(CKR_OPERATION_ACTIVE) }
            var pending: SecretBytes? = nil
            let r = try Output.produce(exact: m.length, pending: &pending, output: output) {
                try m.update(RawView(input))
                return try m.finish()
            }
            return (r, r.delivered)
        }
    }

    func macUpdate(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, verify: Bool) throws {
        try withMAC(handle, verify: verify) { m in
            m.multipart = true
            try m.update(RawView(input))
            return ((), false)
        }
    }

    private func signFinalPart(_ handle: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try withMAC(handle, verify: false) { m in
            m.multipart = true
            var pending: SecretBytes? = nil
            let r = try Output.produce(exact: m.length, pending: &pending, output: output) { try m.finish() }
            return (r, r.delivered)
        }
    }

    private func verifySingle(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, signature: UnsafeRawBufferPointer) throws {
        try withMAC(handle, verify: true) { m in
            if m.multipart { throw ckr(CKR_OPERATION_ACTIVE) }
            try m.update(RawView(input))
            try m.verify(signature)
            return ((), true)
        }
    }

    private func verifyFinalPart(_ handle: CK_SESSION_HANDLE, signature: UnsafeRawBufferPointer) throws {
        try withMAC(handle, verify: true) { m in
            try m.verify(signature)
            return ((), true)
        }
    }
}
