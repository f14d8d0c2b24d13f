// `tg-pkcs11 audit verify`: walks the file once and reports the first broken link with its line number
// (docs/audit.md §What verify detects). Line numbers are 1-based physical lines of the file.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CryptoCore

public struct AuditFinding: Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let message: String
    public var description: String { "line \(line): \(message)" }
}

public struct AuditVerification: Sendable {
    /// Physical lines read (a final fragment without newline counts).
    public var lines = 0
    /// Records that passed (up to the first error).
    public var records = 0
    public var lastSeq: Int64 = 0
    public var lastHash = AuditEncoding.zeroHash
    /// The first broken link; nil when the log verifies.
    public var error: AuditFinding?
    /// Not a break: a crashed writer's fragment, a lagging head sidecar, checkpoints without their key.
    public var warnings: [AuditFinding] = []
    public var checkpointsVerified = 0
    public var checkpointsUnverified = 0
    /// Line of the last checkpoint whose HMAC verified (everything up to it is authenticated).
    public var lastVerifiedCheckpointLine: Int?
    /// The sidecar's position, when there is one.
    public var head: AuditPosition?
    /// Pending records (a state change or key export announced before it took effect) that no outcome record
    /// resolves: the writer stopped in between (killed, crashed, power cut), or is still at work. Not a break
    /// of the log, but the change may or may not have happened: reported by `audit verify`.
    public var pending: [AuditFinding] = []
    public var ok: Bool { error == nil }
}

public enum AuditVerifier {
    /// An audit log may grow large between rotations; past this, verify a rotated part at a time.
    public static let maximumFileSize = 1 << 32

    /// The whole file's bytes; nil when it cannot be opened or read.
    static func readWholeFile(_ path: String) -> [UInt8]? { try? BoundedFile.read(path, limit: maximumFileSize) }

    /// The token whose audit key is given, checked strictly (`audit verify --token`): `name` is `tokens[].name`
    /// (the records' `token`), `uuid` the current incarnation's token uuid.
    public struct StrictToken: Sendable {
        public var name: String
        public var uuid: String
        public init(name: String, uuid: String) {
            self.name = name
            self.uuid = uuid
        }
    }

    /// Events after which a token has a new uuid (or none): checkpoints of another uuid before one of these are
    /// an earlier incarnation's.
    static let incarnationEvents: Set<String> = ["token_init", "token_restore", "token_delete"]

    /// `keys`: audit keys by token uuid (checkpoints of other tokens are counted as unverified). `strict`: with the
    /// key of that token, also fail (1) a checkpoint naming that token with a uuid it cannot verify, unless the
    /// token was initialised, restored or deleted after it; (2) any record of that token after its last verified
    /// checkpoint.
    public static func verify(path: String, keys: [String: SecretBytes] = [:], strict: StrictToken? = nil) throws -> AuditVerification {
        guard let data = readWholeFile(path) else {
            throw AuditError("audit file \(path): cannot read")
        }
        let head = readHead(AuditLog.headPath(for: path))
        return verify(bytes: data, head: head, keys: keys, strict: strict)
    }

    public static func readHead(_ path: String) -> AuditPosition?? {
        guard let data = readWholeFile(path) else { return .none }
        guard let obj = AuditEncoding.parse(data.filter { $0 != 0x0A && $0 != 0x20 }),  // padded to a fixed size
              let seq = AuditEncoding.int(obj["seq"]), let hash = obj["hash"] as? String else {
            return .some(nil)  // present but unreadable
        }
        return .some(AuditPosition(seq: seq, hash: hash))
    }

    /// `head`: nil = no sidecar, .some(nil) = a sidecar that does not parse.
    public static func verify(bytes: [UInt8], head: AuditPosition??, keys: [String: SecretBytes],
                              strict: StrictToken? = nil) -> AuditVerification {
        var r = AuditVerification()
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { $0 }
        let endsWithNewline = bytes.last == 0x0A || bytes.isEmpty
        if endsWithNewline { lines.removeLast() }  // the empty piece after the final newline
        r.lines = lines.count
        let hashes = lines.map { AuditEncoding.hash($0) }
        let parsed = lines.map { AuditEncoding.parse($0) }
        func prevOf(_ i: Int) -> String? { parsed[i]?["prev"] as? String }

        var prev = AuditEncoding.zeroHash
        var expectedSeq: Int64 = 1
        // Index of the strict token's last re-initialisation / restore / deletion.
        let lastIncarnation = strict.flatMap { st in
            parsed.lastIndex { o in
                o?["token"] as? String == st.name && o?["outcome"] as? String == "success"
                    && incarnationEvents.contains(o?["event"] as? String ?? "")
            }
        } ?? -1
        var lastCheckpoint: [String: AuditCheckpointLink] = [:]
        var lastVerifiedIndex = -1
        struct Open { var line: Int; var event: String; var token: String; var text: String }
        var open: [Int64: Open] = [:]
        var attempts = FailedPINAttempts()
        func fail(_ line: Int, _ m: String) -> AuditVerification {
            r.error = AuditFinding(line: line, message: m)
            return r
        }
        for i in 0..<lines.count {
            let n = i + 1
            let isLast = i == lines.count - 1
            if isLast && !endsWithNewline {
                // A fragment at the very end: a writer died mid-write, or the file was cut inside a line.
                if case .some(.some(let h)) = head, h.seq > r.lastSeq {
                    return fail(n, "incomplete record at the end of the file, and the head sidecar records seq \(h.seq) "
                        + "(the file ends at seq \(r.lastSeq)): the file was truncated")
                }
                r.warnings.append(AuditFinding(line: n, message: "incomplete record at the end of the file (a writer "
                    + "was interrupted mid-write); the next append continues the chain after it"))
                break
            }
            guard let obj = parsed[i] else {
                if lines[i].isEmpty { return fail(n, "empty line") }
                // A crashed writer's fragment that the next writer terminated and chained over.
                if i + 1 < lines.count, let next = parsed[i + 1], next["after_partial"] as? Bool == true,
                   next["prev"] as? String == hashes[i] {
                    r.warnings.append(AuditFinding(line: n, message: "incomplete record (a writer was interrupted "
                        + "mid-write); the chain continues over it"))
                    prev = hashes[i]
                    continue
                }
                return fail(n, "not a JSON record (altered)")
            }
            guard let seq = AuditEncoding.int(obj["seq"]) else { return fail(n, "record without seq (altered)") }
            if seq != expectedSeq {
                if seq > expectedSeq {
                    let missing = seq - expectedSeq == 1 ? "seq \(expectedSeq) is" : "seq \(expectedSeq)...\(seq - 1) are"
                    return fail(n, "seq \(seq) where \(expectedSeq) was expected: \(missing) missing (records deleted or reordered)")
                }
                return fail(n, "seq \(seq) where \(expectedSeq) was expected (records reordered or duplicated)")
            }
            guard let p = obj["prev"] as? String else { return fail(n, "record without prev (altered)") }
            if p != prev {
                // Either line n-1 was altered (then line n is intact: the next line still chains to it) or line n's
                // own prev field was (then the next line no longer chains to line n).
                let nextChains: Bool
                if i + 1 < lines.count { nextChains = prevOf(i + 1) == hashes[i] }
                else if case .some(.some(let h)) = head, h.seq == seq { nextChains = h.hash == hashes[i] }
                else { nextChains = true }
                if nextChains, n > 1 {
                    return fail(n - 1, "altered: its SHA-256 no longer matches the prev of line \(n)")
                }
                return fail(n, "prev does not match the SHA-256 of the line before (altered)")
            }
            let event = obj["event"] as? String ?? ""
            let token = obj["token"] as? String ?? ""
            if event == "checkpoint" {
                let uuid = obj["token_uuid"] as? String ?? ""
                let hmac = obj["hmac"] as? String ?? ""
                if let key = keys[uuid] {
                    var previous: AuditCheckpointLink?? = .none   // v1: not chained
                    if obj["prev_checkpoint"] != nil {
                        guard let pc = AuditEncoding.int(obj["prev_checkpoint"]) else {
                            return fail(n, "checkpoint with a prev_checkpoint that is not a seq (altered)")
                        }
                        let before = lastCheckpoint[uuid]
                        guard pc == (before?.seq ?? 0) else {
                            let found = before.map { "seq \($0.seq)" } ?? "none"
                            return fail(n, "checkpoint chains to the checkpoint at seq \(pc), but the previous checkpoint of "
                                + "token \(uuid) in the file is \(found) (checkpoints removed, inserted or moved)")
                        }
                        previous = .some(before)
                    }
                    let ok = AuditKey.checkpointValid(key: key, tokenUUID: uuid, seq: seq, prev: p,
                                                      time: obj["time"] as? String ?? "", previous: previous, mac: hmac)
                    guard ok else {
                        return fail(n, "checkpoint HMAC does not verify under the audit key of token \(uuid) "
                            + "(records before it were rewritten, or it was forged)")
                    }
                    r.checkpointsVerified += 1
                    r.lastVerifiedCheckpointLine = n
                    lastVerifiedIndex = i
                } else {
                    if let st = strict, token == st.name, i > lastIncarnation {
                        return fail(n, "checkpoint of token '\(st.name)' names token uuid \(uuid), which is not this token's "
                            + "(\(st.uuid)), and the token was not re-initialised or restored after it: it cannot be "
                            + "verified (altered or forged)")
                    }
                    r.checkpointsUnverified += 1
                }
                lastCheckpoint[uuid] = AuditCheckpointLink(seq: seq, hmac: hmac)
            }
            if let missing = attempts.take(i, parsed) {
                return fail(n, missing)
            }
            // Pending records and their outcomes (docs/audit.md §Pending records).
            let outcome = obj["outcome"] as? String
            if outcome == "pending" {
                var what = "pending \(event) of token '\(token)'"
                if let pid = AuditEncoding.int(obj["pid"]) { what += ", pid \(pid)" }
                if let s = AuditEncoding.int(obj["session"]) { what += ", session \(s)" }
                if let l = obj["object_label"] as? String { what += ", label '\(l)'" }
                if let u = obj["object_uid"] as? String { what += ", object \(u)" }
                what += ", at \(obj["time"] as? String ?? "?")"
                open[seq] = Open(line: n, event: event, token: token, text: what)
            } else if obj["pending_seq"] != nil {
                guard let ps = AuditEncoding.int(obj["pending_seq"]), let o = open[ps], o.event == event, o.token == token else {
                    return fail(n, "outcome of seq \(AuditEncoding.int(obj["pending_seq"]).map(String.init) ?? "?"), which is "
                        + "not an open pending \(event) record of token '\(token)' (altered)")
                }
                open[ps] = nil
            }
            prev = hashes[i]
            r.lastSeq = seq
            r.lastHash = hashes[i]
            r.records += 1
            expectedSeq = seq + 1
        }
        r.pending = open.values.sorted { $0.line < $1.line }.map {
            AuditFinding(line: $0.line, message: $0.text + ": no outcome was recorded (the process stopped before the "
                + "change was acknowledged, or is still at work): it may or may not have taken effect")
        }
        if let st = strict {
            // Everything of the token must lie before one of its verified checkpoints: records after the last one
            // are only chained, so an editor of the file could have changed them or cut checkpoints after them.
            if let i = parsed.indices.first(where: { $0 > lastVerifiedIndex && parsed[$0]?["token"] as? String == st.name }) {
                let after = lastVerifiedIndex >= 0 ? "after its last verified checkpoint (line \(lastVerifiedIndex + 1))"
                    : "and no checkpoint of it verifies"
                return fail(i + 1, "record of token '\(st.name)' \(after): not authenticated by the audit key (altered, or "
                    + "checkpoints after it removed; a login or logout of the token writes a new checkpoint)")
            }
        }
        // The last line may have been altered without anything after it to notice: the head sidecar does.
        switch head {
        case .none:
            if r.records > 0 {
                r.warnings.append(AuditFinding(line: r.lines, message: "no head sidecar (\(AuditLog.headPath(for: "<file>"))): "
                    + "whole trailing lines cut off would go unnoticed"))
            }
        case .some(.none):
            return fail(r.lines + 1, "the head sidecar is unreadable (altered)")
        case .some(.some(let h)):
            r.head = h
            if h.seq > r.lastSeq {
                return fail(r.lines + 1, "missing: the file ends at seq \(r.lastSeq) but the head sidecar records seq \(h.seq) "
                    + "(trailing records were cut off)")
            }
            if h.seq == r.lastSeq, h.hash != r.lastHash, r.lines > 0 {
                return fail(lastRecordLine(lines: lines, parsed: parsed, seq: h.seq) ?? r.lines,
                            "altered: its SHA-256 differs from the one in the head sidecar")
            }
            if h.seq < r.lastSeq {
                if let line = lastRecordLine(lines: lines, parsed: parsed, seq: h.seq), hashes[line - 1] != h.hash {
                    return fail(line, "altered: its SHA-256 differs from the one in the head sidecar")
                }
                r.warnings.append(AuditFinding(line: r.lines, message: "the head sidecar lags (seq \(h.seq) of \(r.lastSeq)): "
                    + "a writer stopped between its append and the sidecar update"))
            }
        }
        return r
    }

    static func lastRecordLine(lines: [ArraySlice<UInt8>], parsed: [[String: Any]?], seq: Int64) -> Int? {
        for i in stride(from: lines.count - 1, through: 0, by: -1) {
            if let s = AuditEncoding.int(parsed[i]?["seq"]), s == seq { return i + 1 }
        }
        return nil
    }
}

/// Failed PIN attempts against their count (docs/audit.md §Failed PIN attempts). A wrong PIN is counted in the
/// store before the module knows it is wrong; its record carries `failed_attempts` (the role's consecutive
/// failures, this one included), and the next login's record carries `prior_failed_attempts` (the count it reset).
/// Each of 1...prior must have its record: deleting the records of failed attempts before a login (which then
/// checkpoints the doctored file) is noticed. Another process's wrong PIN counted before the login may be recorded
/// just after it: records up to `lateRecordSeconds` after a login count for it.
struct FailedPINAttempts {
    static let lateRecordSeconds = 30.0
    /// failed_attempts values of the wrong-PIN records of (token, role) since that role's counter was last reset.
    private var since: [String: [Int64]] = [:]

    private static func key(_ o: [String: Any], role: String? = nil) -> String {
        (o["token"] as? String ?? "") + "\u{0}" + (role ?? o["role"] as? String ?? "")
    }

    /// Takes record `i`; a finding when it is a login whose cleared attempts lack records.
    mutating func take(_ i: Int, _ parsed: [[String: Any]?]) -> String? {
        guard let o = parsed[i] else { return nil }
        let event = o["event"] as? String ?? ""
        let outcome = o["outcome"] as? String ?? ""
        if outcome == "failure", let k = AuditEncoding.int(o["failed_attempts"]) {
            since[Self.key(o), default: []].append(k)
            return nil
        }
        guard outcome == "success" else { return nil }
        switch event {
        case "login":
            defer { since[Self.key(o)] = nil }
            guard let prior = AuditEncoding.int(o["prior_failed_attempts"]), prior > 0 else { return nil }
            var seen = Set(since[Self.key(o)] ?? [])
            seen.formUnion(Self.lateRecords(after: i, parsed))
            let missing = (1...min(prior, 100_000)).filter { !seen.contains($0) }
            guard !missing.isEmpty else { return nil }
            let list = missing.prefix(10).map(String.init).joined(separator: ", ") + (missing.count > 10 ? ", ..." : "")
            return "login of token '\(o["token"] as? String ?? "")' as \(o["role"] as? String ?? "?") cleared \(prior) failed "
                + "PIN attempt(s), but the record of attempt \(list) is missing (deleted from the log, or a process was "
                + "killed between counting the attempt and recording it)"
        case "pin_change":
            since[Self.key(o)] = nil
        case "pin_init":
            since[Self.key(o, role: "user")] = nil
        case _ where AuditVerifier.incarnationEvents.contains(event):
            since[Self.key(o, role: "so")] = nil
            since[Self.key(o, role: "user")] = nil
        default:
            break
        }
        return nil
    }

    /// failed_attempts of the same token and role recorded within `lateRecordSeconds` after login `i`.
    private static func lateRecords(after i: Int, _ parsed: [[String: Any]?]) -> [Int64] {
        guard let login = parsed[i], let t0 = seconds(login["time"] as? String) else { return [] }
        let key = key(login)
        var out: [Int64] = []
        for j in (i + 1)..<parsed.count {
            guard let o = parsed[j] else { continue }
            guard let t = seconds(o["time"] as? String), t - t0 <= lateRecordSeconds else { break }
            if Self.key(o) == key, o["outcome"] as? String == "failure", let k = AuditEncoding.int(o["failed_attempts"]) {
                out.append(k)
            }
        }
        return out
    }

    /// Seconds since 1970 of a record time ("2026-11-29T10:20:29.123Z"), nil when it is not one.
    static func seconds(_ text: String?) -> Double? {
        guard let text, (20...32).contains(text.utf8.count), text.hasSuffix("Z") else { return nil }
        let u = Array(text.utf8)
        func number(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard u[i] >= 0x30, u[i] <= 0x39 else { return nil }
                v = v * 10 + Int(u[i] - 0x30)
            }
            return v
        }
        guard let y = number(0..<4), let mo = number(5..<7), let d = number(8..<10), let h = number(11..<13),
              let mi = number(14..<16), let s = number(17..<19), (1...12).contains(mo) else { return nil }
        var fraction = 0.0
        if u.count > 21, u[19] == 0x2E, let ms = number(20..<(u.count - 1)) {
            fraction = Double(ms) / pow10(u.count - 21)
        }
        // Days from 1970-01-01 to the civil date (proleptic Gregorian).
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return Double(days * 86400 + h * 3600 + mi * 60 + s) + fraction
    }

    private static func pow10(_ n: Int) -> Double {
        var v = 1.0
        for _ in 0..<max(0, n) { v *= 10 }
        return v
    }
}
