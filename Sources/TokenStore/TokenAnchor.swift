import CryptoCore
import CSQLite
import KeyWrap
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The second location of a token's monotonic state (docs/storage-format.md §Rollback): one small file per token
/// UUID in a directory apart from the store (default `$XDG_STATE_HOME/tensorguard-pkcs11/anchors`), holding the
/// latest generation, its state MAC and the PIN retry counters. Copying an older `token.sqlite` back does not
/// roll the anchor back, so the next login sees the store's generation below the anchor's and refuses it
/// (`StoreError.rollback`) until the SO accepts it (`TokenVault.acceptState`). The retry counters in use are
/// the larger of the store's and the anchor's, so an older or edited store does not clear a lockout.
///
/// The file is two 128-byte slots written in turn (`pwrite` on a descriptor kept open, under `flock`): a write
/// goes to the slot not holding the current state, so a write cut short leaves the previous state readable. The
/// anchor only moves forward: a write with a lower generation keeps the recorded one (and its MAC).
///
/// With a backend that keeps anchors (`AnchorHoldingBackend`: `pkcs11` in a private data object of the HSM token;
/// `aws-kms`, `azure-keyvault` in a tag and `gcp-kms` in labels of the KMS key), every state is also written
/// there, in the same slot encoding, and a read takes the newer of the two (and the larger retry counts): then
/// rolling the store and the anchor file back together is detected too, unless the backend's value is rolled back
/// as well, which needs the backend's credentials (the HSM PIN; permission to tag / update the KMS key). A backend
/// write is a read and a replacement (two network calls on a cloud backend) per state change.
public final class TokenAnchor: Sendable {
    public struct State: Sendable, Equatable {
        public var generation: Int64
        public var stateMAC: [UInt8]
        public var soFailed: Int
        public var userFailed: Int

        public init(generation: Int64, stateMAC: [UInt8], soFailed: Int, userFailed: Int) {
            self.generation = generation
            self.stateMAC = stateMAC
            self.soFailed = soFailed
            self.userFailed = userFailed
        }

        public func failed(_ role: Role) -> Int { role == .so ? soFailed : userFailed }
    }

    public let directory: String
    /// The backend that keeps a copy, or nil.
    public let backend: (any AnchorHoldingBackend)?
    /// The open anchor file of one token (a process uses one token per database).
    private let file = Mutex<(uuid: String, fd: Int32)?>(nil)
    /// What this process last wrote to the backend (a backend write only when the state changed).
    private let backendWritten = Mutex<(uuid: String, state: State)?>(nil)

    static let slotSize = 128
    static let magic = Array("TGANCHR1".utf8)

    public init(directory: String, backend: (any AnchorHoldingBackend)? = nil) {
        self.directory = directory
        self.backend = backend
    }

    deinit {
        if let f = file.withLock({ $0 }) { close(f.fd) }
    }

    func path(_ tokenUUID: String) -> String { directory + "/" + tokenUUID }

    /// The recorded state of `tokenUUID`, or nil when none is recorded (no file, or no valid slot). An anchor in
    /// an untrusted place (`TrustedFile`) is `.untrustedStore`.
    public func read(_ tokenUUID: String) throws -> State? {
        guard Self.validUUID(tokenUUID) else { return nil }
        var st = stat()
        let local = lstat(path(tokenUUID), &st) == 0
            ? try withFile(tokenUUID, create: false) { fd in Self.current(fd, tokenUUID)?.state } : nil
        guard let backend else { return local }
        let kept: State?
        do {
            kept = Self.newest(try backend.readAnchor(tokenUUID: tokenUUID), uuid: tokenUUID)
        } catch let e as KeyWrapError {
            throw StoreError.backend(e)
        }
        guard let kept else { return local }
        guard let local else { return kept }
        var newer = kept.generation >= local.generation ? kept : local
        newer.soFailed = max(kept.soFailed, local.soFailed)
        newer.userFailed = max(kept.userFailed, local.userFailed)
        return newer
    }

    /// Records `state`, keeping a higher recorded generation (and its MAC) when there is one.
    public func record(_ tokenUUID: String, _ state: State) throws {
        try store(tokenUUID, state, keepHigher: true)
    }

    /// Replaces the recorded state unconditionally.
    public func replace(_ tokenUUID: String, _ state: State) throws {
        try store(tokenUUID, state, keepHigher: false)
    }

    private func store(_ tokenUUID: String, _ state: State, keepHigher: Bool) throws {
        guard Self.validUUID(tokenUUID) else { return }
        let written = try writeFile(tokenUUID, state, keepHigher: keepHigher)
        guard let backend, backendWritten.withLock({ $0?.uuid != tokenUUID || $0?.state != written }) else { return }
        do {
            // Forward only here too: the backend's value may be newer than the file (the file rolled back with the store).
            try backend.updateAnchor(tokenUUID: tokenUUID) { current in
                var next = written
                if keepHigher, let c = Self.newest(current, uuid: tokenUUID), c.generation > written.generation {
                    next.generation = c.generation
                    next.stateMAC = c.stateMAC
                }
                return Self.encode(next, uuid: tokenUUID, writes: 0)
            }
        } catch let e as KeyWrapError {
            backendWritten.withLock { $0 = nil }
            throw StoreError.backend(e)
        }
        backendWritten.withLock { $0 = (tokenUUID, written) }
    }

    /// Writes the file's next slot; returns the state written.
    private func writeFile(_ tokenUUID: String, _ state: State, keepHigher: Bool) throws -> State {
        try withFile(tokenUUID, create: true) { fd in
            guard flock(fd, LOCK_EX) == 0 else { throw Self.failure("lock", path(tokenUUID)) }
            defer { _ = flock(fd, LOCK_UN) }
            let current = Self.current(fd, tokenUUID)
            var next = state
            if keepHigher, let c = current?.state, c.generation > state.generation {
                next.generation = c.generation
                next.stateMAC = c.stateMAC
            }
            let writes = (current?.writes ?? 0) &+ 1
            let slot = current.map { 1 - $0.slot } ?? 0
            let bytes = Self.encode(next, uuid: tokenUUID, writes: writes)
            let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(slot * Self.slotSize)) }
            guard written == bytes.count else { throw Self.failure("write", path(tokenUUID)) }
            return next
        }
    }

    /// Runs `body` with the token's anchor file open (opened once, checked with `TrustedFile` when opened).
    private func withFile<R>(_ tokenUUID: String, create: Bool, _ body: (Int32) throws -> R) throws -> R {
        try file.withLock { f in
            if let open = f, open.uuid == tokenUUID { return try body(open.fd) }
            if create { try StoreDirectory.createPrivate(directory) }
            if let problem = TrustedFile.problem(directory) { throw StoreError.untrustedStore(problem) }
            let p = path(tokenUUID)
            let fd = open(p, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0o600)
            guard fd >= 0 else { throw Self.failure("open", p) }
            if let problem = TrustedFile.problem(p) {
                close(fd)
                throw StoreError.untrustedStore(problem)
            }
            if let old = f { close(old.fd) }
            f = (tokenUUID, fd)
            return try body(fd)
        }
    }

    /// The valid slot written last (the higher write count: writes are serialised by `flock`), or nil.
    private static func current(_ fd: Int32, _ uuid: String) -> (state: State, writes: UInt64, slot: Int)? {
        var buffer = [UInt8](repeating: 0, count: 2 * slotSize)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        var best: (state: State, writes: UInt64, slot: Int)?
        for slot in 0..<2 where (slot + 1) * slotSize <= n {
            guard let (state, writes) = decode(Array(buffer[(slot * slotSize)..<((slot + 1) * slotSize)]), uuid: uuid) else { continue }
            if let b = best, b.writes >= writes { continue }
            best = (state, writes, slot)
        }
        return best
    }

    /// The decodable value with the highest generation.
    static func newest(_ values: [[UInt8]], uuid: String) -> State? {
        values.compactMap { decode($0, uuid: uuid)?.0 }.max { $0.generation < $1.generation }
    }

    /// Slot: `"TGANCHR1" || u64be generation || u64be writes || u32be so_failed || u32be user_failed ||
    /// state MAC[32] || token uuid[16] || zero[36] || SHA-256(the 112 bytes before)[0..<16]`.
    static func encode(_ s: State, uuid: String, writes: UInt64) -> [UInt8] {
        var out = magic
        RecordCodec.appendU64(&out, UInt64(bitPattern: s.generation))
        RecordCodec.appendU64(&out, writes)
        RecordCodec.appendU32(&out, UInt32(clamping: max(0, s.soFailed)))
        RecordCodec.appendU32(&out, UInt32(clamping: max(0, s.userFailed)))
        out += Array((s.stateMAC + [UInt8](repeating: 0, count: 32)).prefix(32))
        out += Hex.decode(uuid) ?? [UInt8](repeating: 0, count: 16)
        out += [UInt8](repeating: 0, count: 112 - out.count)
        out += checksum(out)
        return out
    }

    static func decode(_ b: [UInt8], uuid: String) -> (State, UInt64)? {
        guard b.count == slotSize, Array(b[0..<8]) == magic, Array(b[112..<128]) == checksum(Array(b[0..<112])),
              Array(b[64..<80]) == (Hex.decode(uuid) ?? []) else { return nil }
        func u64(_ at: Int) -> UInt64 { b[at..<(at + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        func u32(_ at: Int) -> UInt32 { b[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
        let generation = Int64(bitPattern: u64(8))
        guard generation >= 0 else { return nil }
        let state = State(generation: generation, stateMAC: Array(b[32..<64]),
                          soFailed: Connection.clampCount(Int64(u32(24))), userFailed: Connection.clampCount(Int64(u32(28))))
        return (state, u64(16))
    }

    private static func checksum(_ bytes: [UInt8]) -> [UInt8] {
        Array(((try? Digest.hash(.sha256, bytes)) ?? []).prefix(16))
    }

    private static func failure(_ what: String, _ path: String) -> StoreError {
        .database(code: SQLITE_CANTOPEN, message: "cannot \(what) anchor \(path) (errno \(errno))")
    }

    /// Token UUIDs are 32 lowercase hex characters (`TokenVault.initialize`); anything else names no anchor.
    static func validUUID(_ s: String) -> Bool {
        s.utf8.count == 32 && s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
