// The objects of one token as sessions see them: session objects in memory, token objects through TokenStore
// (secret attributes sealed, no clear key byte on disk whatever CKA_PRIVATE says). Handles are nonzero, stable
// for the life of the process and never reused. Another process's new or deleted token objects appear or vanish
// on the next call: every lookup goes through the store's mirror, which refreshes on PRAGMA data_version.
import CP11Kit
import CryptoCore
import TokenStore

/// What a call may see and do: the token's login role and whether the calling session is read/write.
struct Access: Sendable {
    var role: LoginRole?
    var readWrite: Bool
    var session: CK_SESSION_HANDLE

    var userLoggedIn: Bool { role == .user }
    func canSee(_ r: ObjectRecord) -> Bool { !r.isPrivate || userLoggedIn }
}

/// A located object: its handle and current record.
struct ObjectRef: Sendable {
    let handle: CK_OBJECT_HANDLE
    var record: ObjectRecord
}

extension Token {
    func access(session: CK_SESSION_HANDLE, readWrite: Bool) -> Access {
        Access(role: state.withLock { $0.role }, readWrite: readWrite, session: session)
    }

    private func storeContext(_ what: String) -> String { "token '\(config.name)': \(what)" }

    /// A store call: tampering it finds is logged and audited (`integrityChecked`), every error mapped to a CK_RV.
    private func storeCall<R>(_ what: String, _ role: LoginRole?, _ body: () throws -> R) throws -> R {
        try ErrorMap.guarded(storeContext(what)) { try integrityChecked(what, role: role, body) }
    }

    private var loginRole: LoginRole? { state.withLock { $0.role } }

    // MARK: Lookup

    /// The object behind `handle` if it exists and is visible, else CKR_OBJECT_HANDLE_INVALID. A token object is
    /// checked against the store on every call (its change number, fresh through PRAGMA data_version: another
    /// process's update or destroy shows at once); its decoded record is reused while that number is unchanged.
    func object(_ handle: CK_OBJECT_HANDLE, access: Access) throws -> ObjectRef {
        enum Where { case session(ObjectRecord), token(String, ObjectRecord?), none }
        let loc: Where = state.withLock { s in
            if let e = s.sessionObjects[handle] { return .session(e.record) }
            if let uid = s.handleUIDs[handle] { return .token(uid, s.recordCache[uid]) }
            return .none
        }
        switch loc {
        case .session(let r):
            guard access.canSee(r) else { throw ckr(CKR_OBJECT_HANDLE_INVALID) }
            return ObjectRef(handle: handle, record: r)
        case .token(let uid, let cached):
            if let cached {
                guard let seq = try ErrorMap.guarded(storeContext("read object"), { try database.sequence(uniqueID: uid) }) else {
                    forgetCached(uid)
                    throw ckr(CKR_OBJECT_HANDLE_INVALID)
                }
                if seq == cached.sequence {
                    guard access.canSee(cached) else { throw ckr(CKR_OBJECT_HANDLE_INVALID) }
                    return ObjectRef(handle: handle, record: cached)
                }
            }
            // Logged in: the row must verify before any attribute of it is trusted (an unverified one never is).
            let keys = state.withLock { $0.keys }
            guard let stored = try storeCall("read object", access.role, {
                try keys.map { try database.verifiedObject(uniqueID: uid, keys: $0) } ?? database.object(uniqueID: uid)
            }) else {
                forgetCached(uid)
                throw ckr(CKR_OBJECT_HANDLE_INVALID)
            }
            guard let r = ObjectRecord(stored: stored) else { throw ckr(CKR_OBJECT_HANDLE_INVALID) }
            state.withLock { s in
                if s.recordCache.count >= recordCacheLimit { s.recordCache.removeAll(keepingCapacity: true) }
                s.recordCache[uid] = r
                if let c = s.secretCache[uid], c.sequence != r.sequence { s.secretCache[uid] = nil }
            }
            guard access.canSee(r) else { throw ckr(CKR_OBJECT_HANDLE_INVALID) }
            return ObjectRef(handle: handle, record: r)
        case .none:
            throw ckr(CKR_OBJECT_HANDLE_INVALID)
        }
    }

    /// Drops what the caches hold of an object that changed or is gone (its unsealed value is zeroed).
    func forgetCached(_ uniqueID: String) {
        state.withLock { s in
            s.secretCache[uniqueID] = nil
            s.recordCache[uniqueID] = nil
        }
    }

    /// Puts an unsealed CKA_VALUE in the key cache, in locked memory, while logged in; returns the value the
    /// caller should use (the locked copy when there is one). When the locked arena is full the cache starts
    /// again once; when locked memory is refused altogether nothing is cached (the value lives for this call only).
    private func cacheSecret(_ value: SecretBytes, uniqueID: String, sequence: Int64) -> SecretBytes {
        var locked = value.isLocked ? value : SecretBytes.locked(copying: value)
        if locked == nil, !value.isLocked {
            let flushed = state.withLock { s -> Bool in
                guard !s.secretCache.isEmpty else { return false }
                s.secretCache.removeAll()
                return true
            }
            if flushed { locked = SecretBytes.locked(copying: value) }
            if locked == nil { Log.debug("token '\(config.name)': key cache: no locked memory left; value not cached") }
        }
        guard let locked else { return value }
        let generation = SecretBytes.forkGeneration
        state.withLock { s in
            if s.keys != nil {
                s.secretCache[uniqueID] = CachedSecret(sequence: sequence, value: locked, forkGeneration: generation)
            }
        }
        return locked
    }

    /// A secret value (CKA_VALUE of a key, or of a private data object): from memory for session objects,
    /// unsealed (and cached for the login) for token objects. Not logged in → CKR_USER_NOT_LOGGED_IN.
    /// `record` comes from `object(_:access:)`, which has just checked its change number against the store.
    func secret(_ type: CK_ATTRIBUTE_TYPE, of record: ObjectRecord) throws -> SecretBytes? {
        if let s = record.secrets[type] { return s }
        guard record.sealedTypes.contains(type) else { return nil }
        let cacheable = type == CKA_VALUE
        let generation = SecretBytes.forkGeneration
        let (keys, cached): (SessionKeys?, SecretBytes?) = state.withLock { s in
            guard let keys = s.keys else { return (nil, nil) }
            if cacheable, let c = s.secretCache[record.uniqueID], c.sequence == record.sequence,
               c.forkGeneration == generation {
                return (keys, c.value)
            }
            return (keys, nil)
        }
        if let cached { return cached }
        guard let keys else { throw ckr(CKR_USER_NOT_LOGGED_IN) }
        guard let stored = try ErrorMap.guarded(storeContext("read object"), { try database.object(uniqueID: record.uniqueID) }) else {
            forgetCached(record.uniqueID)
            throw ckr(CKR_OBJECT_HANDLE_INVALID)
        }
        let value = try storeCall("unseal", loginRole) { try database.unseal(stored, attribute: UInt(type), keys: keys) }
        guard cacheable, stored.sequence == record.sequence else { return value }
        return cacheSecret(value, uniqueID: record.uniqueID, sequence: stored.sequence)
    }

    // MARK: Create / update / destroy

    /// Checks the session may create or modify an object with these properties.
    func checkWritable(isToken: Bool, isPrivate: Bool, access: Access) throws {
        if isToken, !access.readWrite { throw ckr(CKR_SESSION_READ_ONLY) }
        if isPrivate, !access.userLoggedIn { throw ckr(CKR_USER_NOT_LOGGED_IN) }
    }

    /// Stores a new object (one sealed insert for a token object) and returns its handle.
    func insert(_ record: ObjectRecord, access: Access) throws -> CK_OBJECT_HANDLE {
        try checkWritable(isToken: record.isToken, isPrivate: record.isPrivate, access: access)
        let handle = handles.allocate()
        if !record.isToken {
            try state.withLock { s in
                guard s.sessions[access.session] != nil else { throw ckr(CKR_SESSION_HANDLE_INVALID) }
                s.sessionObjects[handle] = SessionObjectEntry(record: record, owner: access.session)
            }
            return handle
        }
        var secretAttrs: [UInt: SecretBytes] = [:]
        for (t, v) in record.secrets { secretAttrs[UInt(t)] = v }
        // Logged in, every row written is authenticated; without a login only a public data object can be written.
        let keys = state.withLock { $0.keys }
        if !secretAttrs.isEmpty, keys == nil { throw ckr(CKR_USER_NOT_LOGGED_IN) }
        let stored = try storeCall("insert object", access.role) {
            try database.insert(uniqueID: record.uniqueID, publicAttributes: record.storePublicAttributes,
                                secretAttributes: secretAttrs, keys: keys)
        }
        state.withLock { s in
            s.tokenHandles[record.uniqueID] = handle
            s.handleUIDs[handle] = record.uniqueID
        }
        if let v = record.secrets[CKA_VALUE] { _ = cacheSecret(v, uniqueID: record.uniqueID, sequence: stored.sequence) }
        return handle
    }

    /// Replaces the public attributes of an existing object (C_SetAttributeValue); secrets are unchanged.
    func update(_ ref: ObjectRef, access: Access) throws {
        try checkWritable(isToken: ref.record.isToken, isPrivate: ref.record.isPrivate, access: access)
        if !ref.record.isToken {
            try state.withLock { s in
                guard let e = s.sessionObjects[ref.handle] else { throw ckr(CKR_OBJECT_HANDLE_INVALID) }
                s.sessionObjects[ref.handle] = SessionObjectEntry(record: ref.record, owner: e.owner)
            }
            return
        }
        var secretAttrs: [UInt: SecretBytes]? = nil
        let keys = state.withLock { $0.keys }
        if ref.record.secretsChanged {
            var all: [UInt: SecretBytes] = [:]
            for t in ref.record.sealedTypes.union(ref.record.secrets.keys) {
                guard let v = try secret(t, of: ref.record) else { continue }
                all[UInt(t)] = v
            }
            secretAttrs = all
            if keys == nil { throw ckr(CKR_USER_NOT_LOGGED_IN) }
        }
        // An object written while logged in carries a MAC: changing it needs the login (CKR_USER_NOT_LOGGED_IN).
        _ = try storeCall("update object", access.role) {
            try database.update(uniqueID: ref.record.uniqueID, publicAttributes: ref.record.storePublicAttributes,
                                secretAttributes: secretAttrs, keys: keys)
        }
        forgetCached(ref.record.uniqueID)
    }

    /// Reads, evaluates and (when `evaluate` says it changed) writes a key's policy state in one step: one store
    /// transaction for a token object (exact across processes), under the token's lock for a session object.
    /// Returns `evaluate`'s refusal.
    func updateKeyUsage(_ ref: ObjectRef, _ evaluate: (inout KeyUsage) -> (refusal: String?, changed: Bool)) throws -> String? {
        if ref.record.isToken {
            let keys = state.withLock { $0.keys }
            return try storeCall("key use policy", loginRole) {
                try database.modifyPublicAttributes(uniqueID: ref.record.uniqueID, keys: keys) { attributes in
                    var usage = KeyUsage(attributes)
                    let (refusal, changed) = evaluate(&usage)
                    guard changed else { return (nil, refusal) }
                    var updated = attributes
                    usage.write(into: &updated)
                    return (updated, refusal)
                }
            }
        }
        return state.withLock { st -> String? in
            guard var entry = st.sessionObjects[ref.handle] else { return nil }
            var usage = KeyUsage(entry.record)
            let (refusal, changed) = evaluate(&usage)
            if changed {
                usage.write(into: &entry.record)
                st.sessionObjects[ref.handle] = entry
            }
            return refusal
        }
    }

    func destroy(_ ref: ObjectRef, access: Access) throws {
        try checkWritable(isToken: ref.record.isToken, isPrivate: ref.record.isPrivate, access: access)
        if !ref.record.isToken {
            state.withLock { s in s.sessionObjects[ref.handle] = nil }
            return
        }
        let keys = state.withLock { $0.keys }
        try storeCall("delete object", access.role) { try database.delete(uniqueID: ref.record.uniqueID, keys: keys) }
        forgetCached(ref.record.uniqueID)
    }

    // MARK: Find

    /// Every visible object matching `template`, session objects first, then token objects in creation order.
    /// Token objects come from the store's hash indexes when the template names an indexed attribute.
    func find(_ template: [Attribute], access: Access) throws -> [CK_OBJECT_HANDLE] {
        var wanted: [(CK_ATTRIBUTE_TYPE, AttributeValue)] = []
        for a in template {
            guard let v = AttributePolicy.canonicalForSearch(a) else { return [] }
            wanted.append((a.type, v))
        }
        let tokenFlag: Bool? = wanted.first(where: { $0.0 == CKA_TOKEN }).flatMap {
            if case .bytes(let b) = $0.1 { return Encoding.decodeBool(b) }
            return nil
        }
        var result: [CK_OBJECT_HANDLE] = []
        if tokenFlag != true {
            let objs = state.withLock { s in s.sessionObjects.sorted { $0.key < $1.key } }
            for (h, e) in objs where access.canSee(e.record) && e.record.matches(wanted) {
                result.append(h)
            }
        }
        if tokenFlag == false { return result }

        // Public part of the template goes to the store's index; a secret-at-rest part is checked after unsealing.
        var storeTemplate: [UInt: [UInt8]] = [:]
        var secretPart: [(CK_ATTRIBUTE_TYPE, [UInt8])] = []
        for (t, v) in wanted {
            switch v {
            case .bytes(let b):
                if t == CKA_VALUE { secretPart.append((t, b)) } else { storeTemplate[UInt(t)] = b }
            case .template(let tpl):
                storeTemplate[UInt(t)] = Encoding.encodeTemplate(tpl)
            }
        }
        // Logged in, only rows that verify are found; one that does not is reported as tampering and skipped.
        let keys = state.withLock { $0.keys }
        let found = try storeCall("find", access.role) { () -> [StoredObject] in
            guard let keys else { return try database.find(matching: storeTemplate) }
            let (found, failed) = try database.findVerified(matching: storeTemplate, keys: keys)
            if !failed.isEmpty {
                reportTampering("find", "\(failed.count) object(s) do not match their MAC and are not shown: "
                                    + failed.prefix(4).joined(separator: ", "), role: access.role, session: access.session)
            }
            return found
        }
        var records: [ObjectRecord] = []
        records.reserveCapacity(found.count)
        for stored in found {
            guard let r = ObjectRecord(stored: stored), access.canSee(r) else { continue }
            records.append(r)
        }
        if !secretPart.isEmpty {
            var kept: [ObjectRecord] = []
            for r in records {
                // A public data object's CKA_VALUE is stored in clear (then it's in `attributes` and in the
                // store template match already); sealed values need the login.
                var ok = true
                for (t, b) in secretPart {
                    if let mine = r.attributes[t] { ok = ok && mine == .bytes(b); continue }
                    // Never an equality oracle on a value the caller could not read.
                    if r.hidesSensitive { ok = false; break }
                    guard let s = try? secret(t, of: r) else { ok = false; break }
                    ok = ok && constantTimeEquals(s, b)
                }
                if ok { kept.append(r) }
            }
            records = kept
        }
        state.withLock { s in
            for r in records {
                if let h = s.tokenHandles[r.uniqueID] {
                    result.append(h)
                } else {
                    let h = handles.allocate()
                    s.tokenHandles[r.uniqueID] = h
                    s.handleUIDs[h] = r.uniqueID
                    result.append(h)
                }
            }
        }
        return result
    }
}
