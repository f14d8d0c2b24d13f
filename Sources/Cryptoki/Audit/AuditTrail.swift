// Cryptoki's side of the audit log (docs/audit.md): turns AuditEvents into records, keeps each token's audit
// key while someone is logged in (for checkpoints), and aggregates key use per session, key and operation so
// the per-operation cost is one counter increment under a short lock and no I/O.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Audit
import CP11Kit
import CryptoCore
import Synchronization
import TokenStore

/// The module's audit destination (nil log: audit disabled).
final class AuditTrail: Sendable {
    let log: AuditLog?
    let checkpointEvery: Int
    let keyUseInterval: Double

    init(log: AuditLog?, checkpointEvery: Int = 256, keyUseInterval: Double = 300) {
        self.log = log
        self.checkpointEvery = checkpointEvery
        self.keyUseInterval = keyUseInterval
    }

    static let disabled = AuditTrail(log: nil)

    static func make(_ c: AuditConfiguration) throws -> AuditTrail {
        guard c.enabled else { return .disabled }
        let file = try c.resolvedFile()
        return AuditTrail(log: AuditLog(filePath: file, syslogSocket: c.syslogSocket, sync: c.sync),
                          checkpointEvery: c.checkpointEvery, keyUseInterval: Double(c.keyUseInterval))
    }

    /// The line the module logs when it loads a configuration that switches the audit log off without saying why
    /// (`tg-pkcs11 doctor` fails such a configuration); nil when there is nothing to say.
    static func disabledWarning(_ c: AuditConfiguration) -> String? {
        guard !c.enabled, c.disabledReason == nil else { return nil }
        return "warning: audit log disabled (audit.enabled: false) and the configuration gives no reason (audit.reason): "
            + "state changes and key exports of every token are not recorded"
    }

    static func hex(_ v: CK_ULONG) -> String { "0x" + UInt(v).zeroPadded(8, radix: 16, uppercase: true) }
}

/// Per-token audit state.
final class TokenAuditor: @unchecked Sendable {
    struct UseKey: Hashable {
        var session: CK_SESSION_HANDLE
        var object: CK_OBJECT_HANDLE
        var operation: String
        var mechanism: CK_MECHANISM_TYPE
    }

    struct Use {
        var uniqueID: String
        var label: String?
        var count: Int64
        var first: AuditTime
        var last: AuditTime
    }

    struct State {
        /// The audit key while someone is logged in (derived at login, zeroised with the last reference).
        var key: SecretBytes?
        var tokenUUID: String?
        var lastCheckpointSeq: Int64 = 0
        var uses: [UseKey: Use] = [:]
        var lastFlush = AuditTime.now()
    }

    let trail: AuditTrail
    let tokenName: String
    let state = Mutex<State>(State())

    init(trail: AuditTrail, tokenName: String) {
        self.trail = trail
        self.tokenName = tokenName
    }

    var enabled: Bool { trail.log != nil }

    /// Writes one record; after it, a checkpoint when `checkpoint_every` records passed and the key is at hand.
    /// `sync: false`: no fdatasync for this record (an outcome whose pending record is on disk already).
    @discardableResult
    func write(_ event: AuditEvent, extra: AuditFields = [:], sync: Bool = true) throws -> AuditPosition? {
        guard let log = trail.log else { return nil }
        var f = extra
        f["event"] = .string(event.kind.rawValue)
        f["outcome"] = .string(event.outcome.rawValue)
        if let p = event.pendingSeq { f["pending_seq"] = .int(p) }
        if event.outcome != .pending { f["rv"] = .string(AuditTrail.hex(event.rv)) }  // no answer yet
        f["token"] = .string(tokenName)
        if let r = event.role { f["role"] = .string(r == .so ? "so" : "user") }
        if let s = event.session { f["session"] = .int(Int64(truncatingIfNeeded: s)) }
        if let u = event.objectUniqueID { f["object_uid"] = .string(u) }
        if let l = event.objectLabel { f["object_label"] = .string(l) }
        if let m = event.mechanism { f["mechanism"] = .string(AuditTrail.hex(m)) }
        if let r = event.reason { f["reason"] = .string(r) }
        if let n = event.failedAttempts { f["failed_attempts"] = .int(Int64(n)) }
        if let n = event.priorFailedAttempts { f["prior_failed_attempts"] = .int(Int64(n)) }
        if !event.details.isEmpty { f["details"] = .object(event.details) }
        let position: AuditPosition
        do {
            position = try log.append(f, sync: sync)
        } catch {
            Log.error("token '\(tokenName)': audit record '\(event.kind.rawValue)' not written: \(error)")
            throw CKRError(CKR_DEVICE_ERROR)
        }
        let due = state.withLock { s in s.key != nil && position.seq - s.lastCheckpointSeq >= Int64(trail.checkpointEvery) }
        if due { try checkpoint() }
        return position
    }

    /// A checkpoint record: HMAC under the audit key over the chain up to here. No-op without the key.
    func checkpoint() throws {
        guard let log = trail.log else { return }
        guard let (key, uuid) = state.withLock({ s in s.key.flatMap { k in s.tokenUUID.map { (k, $0) } } }) else { return }
        let fields: AuditFields = ["event": .string("checkpoint"), "outcome": .string("success"),
                                   "rv": .string(AuditTrail.hex(CKR_OK)), "token": .string(tokenName)]
        do {
            let p = try log.appendCheckpoint(fields, tokenUUID: uuid, key: key)
            state.withLock { $0.lastCheckpointSeq = p.seq }
        } catch {
            Log.error("token '\(tokenName)': audit checkpoint not written: \(error)")
            throw CKRError(CKR_DEVICE_ERROR)
        }
    }

    /// Called at login with the new session keys: derives and keeps the audit key.
    func loggedIn(_ keys: SessionKeys) throws {
        guard enabled else { return }
        let key: SecretBytes
        do {
            key = try OperatorAudit.auditKey(keys)
        } catch {
            Log.error("token '\(tokenName)': audit key derivation failed: \(error)")
            throw CKRError(CKR_DEVICE_ERROR)
        }
        state.withLock { s in
            s.key = key
            s.tokenUUID = keys.tokenUUID
        }
    }

    func forgetKey() {
        state.withLock { s in
            s.key = nil
            s.tokenUUID = nil
        }
    }

    // MARK: Key use

    /// The hot path: one increment under this token's audit lock; a time-based flush at most every
    /// `key_use_interval` seconds.
    func noteUse(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE, operation: String, mechanism: CK_MECHANISM_TYPE,
                 describe: () -> (uid: String, label: String?)?) {
        guard enabled else { return }
        let k = UseKey(session: session, object: object, operation: operation, mechanism: mechanism)
        let now = AuditTime.now()
        let interval = trail.keyUseInterval
        let (known, dueNow) = state.withLock { s -> (Bool, Bool) in
            guard s.uses[k] != nil else { return (false, false) }
            s.uses[k]?.count += 1
            s.uses[k]?.last = now
            return (true, now.since(s.lastFlush) >= interval)
        }
        var due = dueNow
        if !known {
            // First use by this session: describe the key once (unique id, label), outside the lock.
            guard let d = describe() else { return }
            due = state.withLock { s in
                if s.uses[k] == nil {
                    s.uses[k] = Use(uniqueID: d.uid, label: d.label, count: 1, first: now, last: now)
                } else {
                    s.uses[k]?.count += 1
                    s.uses[k]?.last = now
                }
                return now.since(s.lastFlush) >= interval
            }
        }
        if due { flushUses(session: nil, reason: "interval") }
    }

    /// Writes the key-use summaries of `session` (nil: all) and forgets them. Never throws: a summary that
    /// cannot be written is logged (the key operations it counts were already answered).
    func flushUses(session: CK_SESSION_HANDLE?, reason: String) {
        guard enabled else { return }
        let taken: [(UseKey, Use)] = state.withLock { s in
            let mine = s.uses.filter { session == nil || $0.key.session == session }
            for k in mine.keys { s.uses[k] = nil }
            if session == nil { s.lastFlush = AuditTime.now() }
            return mine.sorted { ($0.key.session, $0.value.first) < ($1.key.session, $1.value.first) }
        }
        for (k, u) in taken {
            let ev = AuditEvent(kind: .keyUse, outcome: .success, session: k.session, objectUniqueID: u.uniqueID,
                                objectLabel: u.label, mechanism: k.mechanism, reason: nil)
            _ = try? write(ev, extra: ["operation": .string(k.operation), "count": .int(u.count),
                                       "first_use": .string(AuditEncoding.timestamp(u.first)),
                                       "last_use": .string(AuditEncoding.timestamp(u.last)),
                                       "flush": .string(reason)])
        }
    }

    /// In a forked child: forget the parent's aggregates and key without writing them and without waiting.
    func abandonAfterFork() {
        _ = state.withLockIfAvailable { s in
            s.uses.removeAll()
            s.key = nil
            s.tokenUUID = nil
        }
    }
}

extension ObjectRecord {
    var auditLabel: String? {
        guard case .bytes(let b)? = attributes[CKA_LABEL] else { return nil }
        return String(decoding: b, as: UTF8.self)
    }
}
