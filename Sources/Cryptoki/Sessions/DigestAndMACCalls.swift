// C_Digest* and C_Sign*/C_Verify* (HMAC): operation slots and output convention. Digest and MAC lengths are
// fixed, so size queries never compute.
import CP11Kit
import CryptoCore

extension Module {
    // MARK: Digest

    func digestInitImpl(_ handle: CK_SESSION_HANDLE, mechanism: Mechanism) throws {
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

    func digestImpl(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try withDigest(handle) { d in
            if d.multipart { throw ckr(CKR_OPERATION_ACTIVE) }
            let r = try Output.produce(exact: d.algorithm.outputLength, pending: &d.pending, output: output) {
                try d.update(RawView(input))
                return try d.finish()
            }
            return (r, r.delivered)
        }
    }

    func digestUpdateImpl(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer) throws {
        try withDigest(handle) { d in
            d.multipart = true
            try d.update(RawView(input))
            return ((), false)
        }
    }

    func digestKeyImpl(_ handle: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) throws {
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

    func digestFinalImpl(_ handle: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try withDigest(handle) { d in
            d.multipart = true
            let r = try Output.produce(exact: d.algorithm.outputLength, pending: &d.pending, output: output) { try d.finish() }
            return (r, r.delivered)
        }
    }

    // MARK: HMAC

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

    func signImpl(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, output: OutputBuffer) throws -> OutputResult {
        try withMAC(handle, verify: false) { m in
            if m.multipart { throw ckr(CKR_OPERATION_ACTIVE) }
            var pending: [UInt8]? = nil
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

    func signFinalImpl(_ handle: CK_SESSION_HANDLE, output: OutputBuffer) throws -> OutputResult {
        try withMAC(handle, verify: false) { m in
            m.multipart = true
            var pending: [UInt8]? = nil
            let r = try Output.produce(exact: m.length, pending: &pending, output: output) { try m.finish() }
            return (r, r.delivered)
        }
    }

    func verifyImpl(_ handle: CK_SESSION_HANDLE, input: UnsafeRawBufferPointer, signature: UnsafeRawBufferPointer) throws {
        try withMAC(handle, verify: true) { m in
            if m.multipart { throw ckr(CKR_OPERATION_ACTIVE) }
            try m.update(RawView(input))
            try m.verify(signature)
            return ((), true)
        }
    }

    func verifyFinalImpl(_ handle: CK_SESSION_HANDLE, signature: UnsafeRawBufferPointer) throws {
        try withMAC(handle, verify: true) { m in
            try m.verify(signature)
            return ((), true)
        }
    }
}
