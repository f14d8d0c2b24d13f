import CryptoCore
import CSQLite
import KeyWrap
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The second location of a token's monotonic state (docs/storage-format.md §Rollback): one small file per token
/// UUID in a directory apart from the store (default `$XDG_STATE_HOME/tensorguard-pkcs11/anchors`), holding the
/// latest generation, its state MAC and the PIN retry counters. Copying an older `token.sqlite` back does not
/// roll the anchor back, so the next login sees the store's generation below the anchor's and refuses it
/// (`StoreError.rollback`) until the SO accepts it (`TokenVault.acceptRollback`). The retry counters in use are
/// the larger of the store's and the anchor's, so an older or edited store does not clear a lockout.
///
/// The anchor only ever moves forward: a write with a lower generation keeps the recorded one.
public struct TokenAnchor: Sendable {
    public struct State: Sendable, Equatable {
        public var generation: Int64
        public var stateMAC: [UInt8]
        public var soFailed: Int
        public var userFailed: Int

        public func failed(_ role: Role) -> Int { role == .so ? soFailed : userFailed }
    }

    public let directory: String
    static let magic = "tensorguard-pkcs11-anchor 1"

    public init(directory: String) {
        self.directory = directory
    }

    func path(_ tokenUUID: String) -> String { directory + "/" + tokenUUID }

    /// The recorded state of `tokenUUID`, or nil when none is recorded. An unreadable or malformed anchor is
    /// `.corrupt`; one in an untrusted place (`TrustedFile`) is `.untrustedStore`.
    public func read(_ tokenUUID: String) throws -> State? {
        guard Self.validUUID(tokenUUID) else { return nil }
        let file = path(tokenUUID)
        var st = stat()
        guard lstat(file, &st) == 0 else { return nil }
        if let problem = TrustedFile.problem(file) { throw StoreError.untrustedStore(problem) }
        let text: String
        do {
            text = String(decoding: try BoundedFile.read(file, limit: 4096), as: UTF8.self)
        } catch {
            throw StoreError.corrupt("anchor \(file) unreadable")
        }
        var fields: [String: String] = [:]
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        guard lines.first.map(String.init) == Self.magic else { throw StoreError.corrupt("anchor \(file): not an anchor") }
        for line in lines.dropFirst() {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { throw StoreError.corrupt("anchor \(file): malformed line") }
            fields[String(parts[0])] = String(parts[1])
        }
        guard let g = fields["generation"].flatMap({ Int64($0) }), g >= 0,
              let mac = fields["state_mac"].flatMap({ Hex.decode($0) }),
              let so = fields["so_failed"].flatMap({ Int($0) }), let user = fields["user_failed"].flatMap({ Int($0) }),
              fields["token_uuid"] == tokenUUID else {
            throw StoreError.corrupt("anchor \(file): missing or malformed field")
        }
        return State(generation: g, stateMAC: mac, soFailed: Connection.clampCount(Int64(so)),
                     userFailed: Connection.clampCount(Int64(user)))
    }

    /// Records `state`, keeping a higher recorded generation (and its MAC) when there is one. Written to a
    /// temporary file and renamed over the anchor (never a half-written anchor).
    public func record(_ tokenUUID: String, _ state: State) throws {
        guard Self.validUUID(tokenUUID) else { return }
        var next = state
        if let current = try? read(tokenUUID), current.generation > state.generation {
            next.generation = current.generation
            next.stateMAC = current.stateMAC
        }
        try write(tokenUUID, next)
    }

    /// Replaces the anchor unconditionally (the SO's acceptance of a rollback, or a restore).
    public func replace(_ tokenUUID: String, _ state: State) throws {
        guard Self.validUUID(tokenUUID) else { return }
        try write(tokenUUID, state)
    }

    private func write(_ tokenUUID: String, _ s: State) throws {
        try StoreDirectory.createPrivate(directory)
        if let problem = TrustedFile.problem(directory) { throw StoreError.untrustedStore(problem) }
        let text = """
            \(Self.magic)
            token_uuid \(tokenUUID)
            generation \(s.generation)
            state_mac \(Hex.encode(s.stateMAC))
            so_failed \(s.soFailed)
            user_failed \(s.userFailed)

            """
        let file = path(tokenUUID)
        let temporary = file + ".tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.database(code: SQLITE_CANTOPEN, message: "cannot write anchor \(temporary) (errno \(errno))") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, rename(temporary, file) == 0 else {
            let e = errno
            unlink(temporary)
            throw StoreError.database(code: SQLITE_CANTOPEN, message: "cannot write anchor \(file) (errno \(e))")
        }
    }

    /// Token UUIDs are 32 lowercase hex characters (`TokenVault.initialize`); anything else names no anchor.
    static func validUUID(_ s: String) -> Bool {
        s.utf8.count == 32 && s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }
}
