// PKCS#11 §5.10 message digesting: C_DigestInit, C_Digest, C_DigestUpdate, C_DigestKey, C_DigestFinal.
// Digest lengths are fixed, so size queries never compute.
import CP11Kit
import CryptoCore

extension Module {
    public func digestInit(_ handle: CK_SESSION_HANDLE, mechanism: Mechanism) throws {
        let s = try session(handle)
        try Mechanisms.require(mechanism.type, CKF_DIGEST)
        try requireAllowedMechanism(s, mechanism.type)
        try s.ops.withLock { o in
            if o.digest != nil { throw ckr(CKR_OPERATION_ACTIVE) }
            o.digest = try DigestOperation(mechanism)
        }
    }

    private func withDigest<R>(_ handle: CK_SESSION_HANDLE, _ body: (DigestOperation) throws -> (R, done: Bool)) throws -> R {
        let s = try session(handle)
        return try s.ops.withLock { o in
            guard let d = o.digest else { throw ckr(CKR_OPERATION_NOT_INITIALIZED) }
            do {
                let (r, done) = try body(d)
                if done { o.digest = nil }
                return r
            } catch {
                o.digest = nil
                throw error
            }
        }
    }

    public func digest(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try withDigest(handle) { d in
            if d.multipart { throw ckr(CKR_OPERATION_ACTIVE) }
            let r = try Output.produce(exact: d.algorithm.outputLength, pending: &d.pending, output: output) {
                try d.update(RawView(input))
                return try d.finish()
            }
            return (r, r.delivered)
        }
    }

    public func digestUpdate(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer) throws {
        try withDigest(handle) { d in
            d.multipart = true
            try d.update(RawView(input))
            return ((), false)
        }
    }

    public func digestKey(_ handle: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) throws {
        let s = try session(handle)
        let ref: ObjectRef
        do { ref = try s.token.object(key, access: s.access) } catch let e as CKRError where e.rv == CKR_OBJECT_HANDLE_INVALID {
            _ = try? withDigest(handle) { _ in ((), true) }
            throw ckr(CKR_KEY_HANDLE_INVALID)
        }
        try withDigest(handle) { d in
            // A digest of a value the caller may not read would be an offline equality oracle on it.
            guard case .secretKey = ref.record.kind, !ref.record.hidesSensitive else { throw ckr(CKR_KEY_INDIGESTIBLE) }
            let v = try keyValue(s, ref.record)
            d.multipart = true
            try d.update(v)
            return ((), false)
        }
    }

    public func digestFinal(_ handle: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try withDigest(handle) { d in
            d.multipart = true
            let r = try Output.produce(exact: d.algorithm.outputLength, pending: &d.pending, output: output) { try d.finish() }
            return (r, r.delivered)
        }
    }
}
