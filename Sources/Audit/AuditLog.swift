// The appender: one record per call, to a file (appends atomic across processes) and/or syslog.
//
// File protocol (docs/audit.md): open O_APPEND, flock(LOCK_EX), read the tail to learn the last record's seq
// and the SHA-256 of the last line, write the new line with one write(), fdatasync when `sync`, rewrite the
// `<file>.head` sidecar (last seq and hash, in place), unlock. A process that wrote the last record itself and
// finds the file unchanged since (inode, size, mtime) skips reading the tail. The file is the source of truth for the chain:
// the sidecar only lets `verify` notice whole trailing lines cut off.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CryptoCore
import Synchronization

public struct AuditError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where the chain stands after an append: the record's seq and the hash of its line.
public struct AuditPosition: Sendable, Equatable {
    public var seq: Int64
    public var hash: String
    public init(seq: Int64, hash: String) {
        self.seq = seq
        self.hash = hash
    }
}

public final class AuditLog: Sendable {
    public let filePath: String?
    public let syslogSocket: String?
    public let sync: Bool
    /// Serialises this process's appends (flock serialises processes).
    private let memory = Mutex<Memory>(Memory())

    struct Memory {
        /// The chain of a syslog-only log.
        var position = AuditPosition(seq: 0, hash: AuditEncoding.zeroHash)
        /// The last checkpoint this process wrote or found, per token uuid (seq, hmac): valid for the file while
        /// `lastWrite` still matches it (nobody appended since), and the only source for a syslog-only log.
        var lastCheckpoint: [String: AuditCheckpointLink] = [:]
        /// The file as this process left it after its last append; when the file still looks exactly so (same
        /// inode, size and modification time under the flock), nobody appended since and the tail need not be read.
        var lastWrite: FileEnd?
    }

    struct FileEnd: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: timespec
        var position: AuditPosition

        static func == (a: FileEnd, b: FileEnd) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size
                && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
                && a.position == b.position
        }

        /// The identity of the file behind `fd` now, paired with `position`.
        static func of(_ fd: Int32, position: AuditPosition) -> FileEnd? {
            var st = stat()
            guard fstat(fd, &st) == 0 else { return nil }
            return FileEnd(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                           modified: st.st_mtim, position: position)
        }

        func matches(_ fd: Int32) -> Bool {
            guard let now = FileEnd.of(fd, position: position) else { return false }
            return now == self
        }
    }

    public init(filePath: String?, syslogSocket: String?, sync: Bool = true) {
        self.filePath = filePath
        self.syslogSocket = syslogSocket
        self.sync = sync
    }

    public static func headPath(for file: String) -> String { file + ".head" }

    /// Appends one record. `fields` must not contain seq/prev/time/pid/v (added here); `finish` may add fields
    /// that depend on the chain position (a checkpoint's MAC): it gets (seq, prev, time).
    /// `sync: false` skips the fdatasync of this one record even when the log syncs (an outcome record whose
    /// pending record is already on disk: it reaches the disk with the next synced record, and a power cut before
    /// that leaves the pending record unresolved, which `verify` reports).
    @discardableResult
    public func append(_ fields: AuditFields, sync syncThis: Bool = true,
                       finish: ((inout AuditFields, Int64, String, String) throws -> Void)? = nil) throws -> AuditPosition {
        try memory.withLock { mem in
            try appendLocked(&mem, fields, sync: syncThis, checkpointOf: nil) { f, seq, prev, time, _ in
                try finish?(&f, seq, prev, time)
            }
        }
    }

    /// Appends a checkpoint of token `tokenUUID` (docs/audit.md §Checkpoints): `fields` plus `prev_checkpoint`
    /// (the seq of this token's previous checkpoint in the file, 0 when none) and `hmac`, which covers the chain up
    /// to here and the previous checkpoint's own hmac, so checkpoints chain to each other. The previous checkpoint
    /// is found under the file's lock: remembered when this process wrote it and nobody appended since, else
    /// by reading the file backwards from its end.
    @discardableResult
    public func appendCheckpoint(_ fields: AuditFields, tokenUUID: String, key: SecretBytes) throws -> AuditPosition {
        try memory.withLock { mem in
            var written: AuditCheckpointLink?
            let p = try appendLocked(&mem, fields, sync: true, checkpointOf: tokenUUID) { f, seq, prev, time, before in
                f["token_uuid"] = .string(tokenUUID)
                f["prev_checkpoint"] = .int(before?.seq ?? 0)
                let mac = try AuditKey.checkpointMAC(key: key, tokenUUID: tokenUUID, seq: seq, prev: prev, time: time,
                                                     previous: before)
                f["hmac"] = .string(mac)
                written = AuditCheckpointLink(seq: seq, hmac: mac)
            }
            mem.lastCheckpoint[tokenUUID] = written
            return p
        }
    }

    private func appendLocked(_ mem: inout Memory, _ fields: AuditFields, sync syncThis: Bool, checkpointOf uuid: String?,
                              finish: (inout AuditFields, Int64, String, String, AuditCheckpointLink?) throws -> Void) throws -> AuditPosition {
        let time = AuditEncoding.timestamp()
        let line: [UInt8]
        let position: AuditPosition
        if let filePath {
            let remembered = mem.lastCheckpoint
            var unchanged = false
            defer {
                // Someone else appended, or the file was rotated: what this process remembers no longer applies.
                if !unchanged { mem.lastCheckpoint = [:] }
            }
            (line, position) = try appendToFile(filePath, lastWrite: &mem.lastWrite, sync: sync && syncThis,
                                                unchanged: &unchanged,
                                                findCheckpoint: uuid.map { u in { fd, unchanged in
                if unchanged, let known = remembered[u] { return known }
                return try AuditTail.lastCheckpoint(fd: fd, path: filePath, tokenUUID: u)
            } }) { seq, prev, afterPartial, before in
                var f = fields
                // Marks the record that follows a crashed writer's fragment (verify reports the fragment).
                if afterPartial { f["after_partial"] = .bool(true) }
                return try AuditLog.build(f, seq: seq, prev: prev, time: time) { try finish(&$0, $1, $2, $3, before) }
            }
        } else {
            let seq = mem.position.seq + 1
            let before = uuid.flatMap { mem.lastCheckpoint[$0] }
            line = try AuditLog.build(fields, seq: seq, prev: mem.position.hash, time: time) {
                try finish(&$0, $1, $2, $3, before)
            }
            position = AuditPosition(seq: seq, hash: AuditEncoding.hash(line))
        }
        mem.position = position
        if let syslogSocket {
            let failed = fields["outcome"] == .string("failure")
            let event: String
            if case .string(let e)? = fields["event"] { event = e } else { event = "-" }
            try Syslog.send(line: line, event: event, warning: failed, socketPath: syslogSocket)
        }
        return position
    }

    private static func build(_ fields: AuditFields, seq: Int64, prev: String, time: String,
                                finish: (inout AuditFields, Int64, String, String) throws -> Void) throws -> [UInt8] {
        var f = fields
        f["v"] = .int(AuditEncoding.formatVersion)
        f["seq"] = .int(seq)
        f["prev"] = .string(prev)
        f["time"] = .string(time)
        f["pid"] = .int(Int64(getpid()))
        try finish(&f, seq, prev, time)
        return AuditEncoding.encode(f)
    }

    private func appendToFile(_ path: String, lastWrite: inout FileEnd?, sync: Bool, unchanged: inout Bool,
                              findCheckpoint: ((Int32, Bool) throws -> AuditCheckpointLink?)?,
                              _ build: (Int64, String, Bool, AuditCheckpointLink?) throws -> [UInt8]) throws -> ([UInt8], AuditPosition) {
        try Self.makeParentDirectory(of: path)
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditError("audit file \(path): cannot open (\(Self.errnoText()))") }
        defer { close(fd) }  // also releases the flock
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw AuditError("audit file \(path): flock failed (\(Self.errnoText()))") }
        }
        let tail: AuditTail
        if let known = lastWrite, known.matches(fd) {
            tail = AuditTail(lastSeq: known.position.seq, chainHash: known.position.hash, partial: false)
            unchanged = true
        } else {
            tail = try AuditTail.read(fd: fd, path: path)
            unchanged = false
        }
        let before = try findCheckpoint?(fd, unchanged)
        let seq = tail.lastSeq + 1
        let line = try build(seq, tail.chainHash, tail.partial, before)
        var bytes = tail.partial ? [UInt8(ascii: "\n")] : []
        bytes += line
        bytes.append(UInt8(ascii: "\n"))
        try Self.writeAll(fd, bytes, path: path)
        if sync, fdatasync(fd) != 0 {
            throw AuditError("audit file \(path): fdatasync failed (\(Self.errnoText()))")
        }
        let position = AuditPosition(seq: seq, hash: AuditEncoding.hash(line))
        lastWrite = nil
        try Self.writeHead(position, for: path)
        lastWrite = FileEnd.of(fd, position: position)
        return (line, position)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress.map { $0 + offset }, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AuditError("audit file \(path): write failed (\(errnoText()))")
            }
            offset += n
        }
    }

    /// Size of the head sidecar: its JSON padded with spaces, then a newline.
    public static let headSize = 128

    /// `<file>.head`: {"hash":…,"seq":…,"v":1} padded to `headSize` bytes, rewritten in place under the file's
    /// flock with one pwrite at offset 0 (a single sector: no torn state, and no rename per record).
    static func writeHead(_ position: AuditPosition, for path: String) throws {
        let head = headPath(for: path)
        var body = AuditEncoding.encode(["v": .int(AuditEncoding.formatVersion), "seq": .int(position.seq),
                                         "hash": .string(position.hash)])
        guard body.count < headSize else { throw AuditError("audit head \(head): record too long") }
        body += [UInt8](repeating: UInt8(ascii: " "), count: headSize - 1 - body.count) + [UInt8(ascii: "\n")]
        let fd = open(head, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditError("audit head \(head): cannot open (\(errnoText()))") }
        defer { close(fd) }
        var written = 0
        while written < body.count {
            let n = body.withUnsafeBytes { pwrite(fd, $0.baseAddress.map { $0 + written }, body.count - written, off_t(written)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AuditError("audit head \(head): write failed (\(errnoText()))")
            }
            written += n
        }
        var st = stat()
        if fstat(fd, &st) == 0, st.st_size != off_t(headSize), ftruncate(fd, off_t(headSize)) != 0 {
            throw AuditError("audit head \(head): truncate failed (\(errnoText()))")
        }
    }

    /// Makes sure the log can be written before anyone relies on it: its directory exists (created 0700) and the
    /// file opens for appending (created 0600, nothing written). Throws `AuditError` naming the path and the
    /// errno. The module calls this at C_Initialize: a token whose state changes could not be recorded is not
    /// offered (they would fail closed one by one, after some had already reached the store).
    public func checkWritable() throws {
        guard let path = filePath else { return }
        try Self.makeParentDirectory(of: path)
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let e = errno
            throw AuditError("audit file \(path): cannot open (\(String(cString: strerror(e))), errno \(e))")
        }
        close(fd)
    }

    static func makeParentDirectory(of path: String) throws {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let dir = String(path[..<slash])
        var st = stat()
        if stat(dir, &st) == 0 { return }
        try makeParentDirectory(of: dir)
        if mkdir(dir, 0o700) != 0, errno != EEXIST {
            let e = errno
            throw AuditError("audit directory \(dir): cannot create (\(String(cString: strerror(e))), errno \(e))")
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// What a writer needs from the end of the file.
struct AuditTail {
    var lastSeq: Int64
    /// SHA-256 of the last line, complete or not: the next record's `prev`.
    var chainHash: String
    /// The file ends in a fragment without a newline (a writer died mid-write, or the file was cut).
    var partial: Bool

    static func read(fd: Int32, path: String) throws -> AuditTail {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw AuditError("audit file \(path): fstat failed (\(AuditLog.errnoText()))") }
        let size = Int(st.st_size)
        if size == 0 { return AuditTail(lastSeq: 0, chainHash: AuditEncoding.zeroHash, partial: false) }
        var window = min(size, 4096)   // a record is a few hundred bytes; grows ×4 while no record fits
        while true {
            var buf = [UInt8](repeating: 0, count: window)
            let got = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, window, off_t(size - window)) }
            guard got == window else { throw AuditError("audit file \(path): read failed (\(AuditLog.errnoText()))") }
            let whole = window == size
            if let tail = parse(buf, wholeFile: whole) { return tail }
            if whole { return AuditTail(lastSeq: 0, chainHash: AuditEncoding.hash(buf), partial: buf.last != 0x0A) }
            window = min(size, window * 4)
        }
    }

    /// nil when `buf` (the end of the file) is too short to hold what is needed.
    static func parse(_ buf: [UInt8], wholeFile: Bool) -> AuditTail? {
        let nl = UInt8(ascii: "\n")
        let partial = buf.last != nl
        // End of the complete part (index just after its last newline).
        var completeEnd = buf.count
        if partial {
            guard let i = buf.lastIndex(of: nl) else {
                return wholeFile ? AuditTail(lastSeq: 0, chainHash: AuditEncoding.hash(buf), partial: true) : nil
            }
            completeEnd = i + 1
        }
        // Walk back over complete lines until one carries a seq.
        var end = completeEnd - 1  // index of the newline ending the line
        var lastLineHash: String?
        while end >= 0 {
            let start: Int
            if let i = buf[..<end].lastIndex(of: nl) { start = i + 1 } else {
                guard wholeFile else { return nil }
                start = 0
            }
            let line = buf[start..<end]
            if lastLineHash == nil { lastLineHash = AuditEncoding.hash(line) }
            if let obj = AuditEncoding.parse(line), let seq = AuditEncoding.int(obj["seq"]) {
                let hash = partial ? AuditEncoding.hash(buf[completeEnd...]) : (lastLineHash ?? AuditEncoding.hash(line))
                return AuditTail(lastSeq: seq, chainHash: hash, partial: partial)
            }
            if start == 0 { break }
            end = start - 1
        }
        guard wholeFile else { return nil }
        let hash = partial ? AuditEncoding.hash(buf[completeEnd...]) : (lastLineHash ?? AuditEncoding.zeroHash)
        return AuditTail(lastSeq: 0, chainHash: hash, partial: partial)
    }
}

/// A checkpoint as the next checkpoint of the same token chains to it: its seq and its hmac.
public struct AuditCheckpointLink: Sendable, Equatable {
    public var seq: Int64
    public var hmac: String
    public init(seq: Int64, hmac: String) {
        self.seq = seq
        self.hmac = hmac
    }
}

extension AuditTail {
    /// The last checkpoint of `tokenUUID` in the file, read backwards from the end in 64 KiB windows (a login
    /// usually finds it within the last few records: logouts write one). nil when the file has none.
    static func lastCheckpoint(fd: Int32, path: String, tokenUUID: String) throws -> AuditCheckpointLink? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw AuditError("audit file \(path): fstat failed (\(AuditLog.errnoText()))") }
        var end = Int(st.st_size)   // bytes [0, end) not yet searched; `carry` = the partial line after `end`
        var carry: [UInt8] = []
        let needle = Array("\"token_uuid\":\"\(tokenUUID)\"".utf8)
        let window = 1 << 16
        while end > 0 {
            let start = max(0, end - window)
            var buf = [UInt8](repeating: 0, count: end - start)
            let got = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, end - start, off_t(start)) }
            guard got == end - start else { throw AuditError("audit file \(path): read failed (\(AuditLog.errnoText()))") }
            buf += carry
            // Complete lines only (the first piece may be cut unless this window reaches the file's start).
            var pieces = buf.split(separator: 0x0A, omittingEmptySubsequences: false)
            carry = start > 0 ? Array(pieces.removeFirst()) : []
            for line in pieces.reversed() where contains(line, needle) {
                if let obj = AuditEncoding.parse(line), obj["event"] as? String == "checkpoint",
                   obj["token_uuid"] as? String == tokenUUID, let seq = AuditEncoding.int(obj["seq"]),
                   let mac = obj["hmac"] as? String {
                    return AuditCheckpointLink(seq: seq, hmac: mac)
                }
            }
            end = start
        }
        return nil
    }

    private static func contains(_ hay: ArraySlice<UInt8>, _ needle: [UInt8]) -> Bool {
        guard let first = needle.first, hay.count >= needle.count else { return false }
        var i = hay.startIndex
        let last = hay.endIndex - needle.count
        while i <= last {
            if hay[i] == first, hay[i..<(i + needle.count)].elementsEqual(needle) { return true }
            i += 1
        }
        return false
    }
}
