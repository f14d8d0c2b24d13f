import CryptoCore
import CSQLite
import KeyWrap
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Clear metadata of a backup file (docs/storage-format.md, "Backup file"). Authenticated, not secret.
public struct TokenBackupMetadata: Sendable, Equatable {
    /// Backup file format version (`TokenBackup.version`).
    public var backupVersion: Int
    /// `tokens[].name` of the token that was backed up (informational; restore chooses its own).
    public var tokenName: String
    /// Token label, trailing blanks removed.
    public var label: String
    public var serialNumber: String
    public var tokenUUID: String
    /// The backend that wraps the root key inside the snapshot: restore needs the same one.
    public var backend: BackendDescriptor
    /// `token.format_version` of the snapshot.
    public var storeFormatVersion: Int
    public var objectCount: Int
    /// Unix time (seconds) of the snapshot.
    public var created: Int64
    /// Length of the decrypted snapshot in bytes.
    public var snapshotLength: Int
}

/// Why a backup file was refused. Messages never contain a PIN or key byte.
public enum TokenBackupError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file does not start with the backup magic.
    case notABackup
    /// Written by a newer format than this build reads.
    case unsupportedVersion(Int)
    /// Truncated, bit-flipped or otherwise malformed (trailer digest or framing wrong).
    case damaged(String)
    /// The SO PIN does not open the SO envelope stored in the backup.
    case pinIncorrect
    /// Framing and digest are intact but the encrypted snapshot or its header fails authentication: the file was
    /// forged or assembled from parts of different backups.
    case authenticationFailed
    /// The snapshot's token is not the one the session keys belong to (it was re-initialised meanwhile).
    case tokenChanged

    public var description: String {
        switch self {
        case .notABackup: return "not a TensorGuard token backup (bad magic)"
        case .unsupportedVersion(let v): return "backup format version \(v) is newer than this build understands (1)"
        case .damaged(let why): return "backup file is damaged: \(why)"
        case .pinIncorrect: return "the SO PIN does not open this backup (wrong SO PIN, or a backup of another token)"
        case .authenticationFailed:
            return "backup failed authentication although its checksum is intact: it was modified or forged"
        case .tokenChanged: return "the token was re-initialised while the backup was being taken; try again"
        }
    }
}

/// Break-glass backup files of one token (docs/storage-format.md, "Backup file", version 1):
///
/// ```
/// "TGBACKUP" || u16 version || u32 H || header[H] || u64 C || nonce[12] || AES-256-GCM(snapshot)[C] || SHA-256[32]
/// data key = HKDF-SHA-256(ikm = envelope key, salt = "TG-BACKUP-KEY-1", info = data salt || uuid, 32)
/// AAD      = every byte before the nonce
/// ```
///
/// The envelope key only opens with the SO PIN (the SO envelope travels in the header) and the snapshot's root
/// key only unwraps through the token's backend, so restoring needs both. The trailer digest is unkeyed: it tells
/// a damaged file apart from a wrong PIN or a forgery, it does not authenticate anything.
public enum TokenBackup {
    public static let magic: [UInt8] = Array("TGBACKUP".utf8)
    public static let version = 1
    static let keySalt = Array("TG-BACKUP-KEY-1".utf8)
    static let dataSaltLength = 32
    static let digestLength = 32
    /// magic + version + header length.
    static let prefixLength = 8 + 2 + 4
    /// Snapshots larger than this are refused (the whole file is held in memory).
    public static let maximumSnapshotLength = 1 << 31

    /// Writes a transactionally consistent copy of the database to `path` (`VACUUM INTO`: no free pages, so no
    /// residue of deleted rows; other processes keep reading and writing meanwhile). `path` must not exist; it is
    /// created 0600 (empty, which VACUUM INTO accepts) before SQLite writes into it.
    public static func snapshot(_ database: TokenDatabase, to path: String) throws {
        try database.withConnection { conn in
            try conn.checkUsable()
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw StoreError.database(code: SQLITE_CANTOPEN, message: "cannot create snapshot \(path) (errno \(errno))")
            }
            close(fd)
            try conn.driver.snapshot(into: path)
        }
    }

    /// What a backup header needs from the snapshot database (its token row and SO envelope), read while the
    /// snapshot is open; the file's bytes are read after it is closed.
    public struct SnapshotInfo: Sendable {
        let record: TokenRecord
        let envelope: PINEnvelope
        let objectCount: Int
    }

    /// Reads the token row, SO envelope and object count of an opened snapshot.
    public static func describe(_ snapshotDatabase: TokenDatabase) throws -> SnapshotInfo {
        let (record, envelope, count) = try snapshotDatabase.read { conn -> (TokenRecord, PINEnvelope?, Int) in
            (conn.token.record, try conn.loadEnvelope(.so), conn.objects.count)
        }
        guard record.isInitialized else { throw StoreError.tokenNotInitialized }
        guard let envelope, record.backend != nil else { throw StoreError.corrupt("SO envelope or backend missing") }
        return SnapshotInfo(record: record, envelope: envelope, objectCount: count)
    }

    /// Builds a backup file from `snapshot` (the bytes of a `snapshot(_:to:)` file, described by `info`) and the
    /// keys of an SO login on the live token.
    public static func seal(snapshot: [UInt8], info: SnapshotInfo, keys: SessionKeys, tokenName: String,
                            created: Int64) throws -> (file: [UInt8], metadata: TokenBackupMetadata) {
        guard keys.role == .so else { throw StoreError.wrongRole }
        guard snapshot.count <= maximumSnapshotLength else { throw StoreError.invalidArgument("token database too large") }
        let record = info.record, envelope = info.envelope, count = info.objectCount
        guard record.tokenUUID == keys.tokenUUID else { throw TokenBackupError.tokenChanged }
        guard let backend = record.backend else { throw StoreError.corrupt("backend missing") }
        let metadata = TokenBackupMetadata(
            backupVersion: version, tokenName: tokenName, label: trimmedLabel(record.label),
            serialNumber: record.serialNumber, tokenUUID: record.tokenUUID, backend: backend,
            storeFormatVersion: record.formatVersion, objectCount: count, created: created, snapshotLength: snapshot.count)
        let dataSalt = try crypto { try SecureRandom.bytes(dataSaltLength) }
        var header: [UInt8] = []
        for f in [tokenName, metadata.label, record.serialNumber, record.tokenUUID, backend.kind, backend.keyID,
                  backend.keyVersion] { try appendField(&header, Array(f.utf8)) }
        RecordCodec.appendU32(&header, UInt32(truncatingIfNeeded: record.formatVersion))
        RecordCodec.appendU64(&header, UInt64(count))
        RecordCodec.appendU64(&header, UInt64(bitPattern: created))
        RecordCodec.appendU64(&header, UInt64(snapshot.count))
        try appendField(&header, Array("scrypt".utf8))
        for v in [envelope.log2N, envelope.r, envelope.p] { RecordCodec.appendU32(&header, UInt32(truncatingIfNeeded: v)) }
        try appendField(&header, envelope.salt)
        try appendField(&header, envelope.sealed)
        try appendField(&header, dataSalt)

        var file = magic
        RecordCodec.appendU16(&file, UInt16(version))
        RecordCodec.appendU32(&file, UInt32(header.count))
        file += header
        RecordCodec.appendU64(&file, UInt64(snapshot.count + 16))
        let dataKey = try dataKey(envelopeKey: keys.envelopeKey, salt: dataSalt, uuid: record.tokenUUID)
        try crypto {
            let nonce = try SecureRandom.bytes(12)
            let sealed = try AESGCM.seal(key: dataKey, iv: nonce, plaintext: snapshot, aad: file)
            file += nonce
            file += sealed
        }
        file += try crypto { try Digest.hash(.sha256, file) }
        return (file, metadata)
    }

    /// Checks framing and the trailer digest and returns the clear metadata. Needs no PIN.
    public static func inspect(_ file: [UInt8]) throws -> TokenBackupMetadata {
        try parse(file).metadata
    }

    /// `inspect`, then opens the SO envelope with `soPIN` (scrypt; no retry counter: the file has none) and
    /// decrypts the snapshot. The result is a token database file whose root key still needs the backend.
    public static func open(_ file: [UInt8], soPIN: some ByteView) throws -> (metadata: TokenBackupMetadata, snapshot: [UInt8]) {
        let p = try parse(file)
        let m = p.metadata
        guard (TokenVault.minimumKDFLog2N...TokenVault.maximumKDFLog2N).contains(p.log2N), (1...32).contains(p.r),
              (1...16).contains(p.p), p.salt.count == TokenVault.saltLength,
              p.sealedEnvelope.count == TokenVault.nonceLength + 32 + TokenVault.tagLength else {
            throw TokenBackupError.authenticationFailed
        }
        let pinKey = try crypto { try KDF.scrypt(password: soPIN, salt: p.salt, log2N: p.log2N, r: p.r, p: p.p, length: 32) }
        let aad = TokenVault.envelopeAAD(role: .so, uuid: m.tokenUUID, serial: m.serialNumber, log2N: p.log2N, r: p.r, p: p.p)
        let envelopeKey: SecretBytes
        do {
            envelopeKey = try AESGCM.openSecret(key: pinKey, iv: p.sealedEnvelope[0..<TokenVault.nonceLength],
                                                ciphertextAndTag: p.sealedEnvelope[TokenVault.nonceLength...], aad: aad)
        } catch CryptoError.authenticationFailed {
            throw TokenBackupError.pinIncorrect
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
        let key = try dataKey(envelopeKey: envelopeKey, salt: p.dataSalt, uuid: m.tokenUUID)
        let snapshot: [UInt8]
        do {
            snapshot = try AESGCM.open(key: key, iv: file[p.nonceRange], ciphertextAndTag: file[p.ciphertextRange],
                                       aad: file[0..<p.nonceRange.lowerBound])
        } catch CryptoError.authenticationFailed {
            throw TokenBackupError.authenticationFailed
        } catch let e as CryptoError {
            throw StoreError.crypto(e)
        }
        guard snapshot.count == m.snapshotLength else { throw TokenBackupError.authenticationFailed }
        return (m, snapshot)
    }

    // MARK: internals

    struct Parsed {
        var metadata: TokenBackupMetadata
        var log2N: Int, r: Int, p: Int
        var salt: [UInt8]
        var sealedEnvelope: [UInt8]
        var dataSalt: [UInt8]
        var nonceRange: Range<Int>
        var ciphertextRange: Range<Int>
    }

    static func parse(_ file: [UInt8]) throws -> Parsed {
        guard file.count >= magic.count, Array(file[0..<magic.count]) == magic else {
            throw file.count < magic.count && Array(magic.prefix(file.count)) == file && !file.isEmpty
                ? TokenBackupError.damaged("truncated to \(file.count) bytes") : TokenBackupError.notABackup
        }
        guard file.count >= prefixLength + digestLength else {
            throw TokenBackupError.damaged("truncated to \(file.count) bytes")
        }
        var r = RecordCodec.Reader(bytes: file)
        r.offset = magic.count
        let v = Int(try damaged { try r.u16() })
        guard v <= version else { throw TokenBackupError.unsupportedVersion(v) }
        guard v == version else { throw TokenBackupError.damaged("format version 0") }
        let body = file.count - digestLength
        let digest = try crypto { try Digest.hash(.sha256, file[0..<body]) }
        guard digest == Array(file[body...]) else {
            throw TokenBackupError.damaged("SHA-256 checksum mismatch (the file was truncated or bytes changed)")
        }
        return try damaged {
            let h = Int(try r.u32())
            let headerEnd = r.offset + h
            guard h <= body - r.offset else { throw StoreError.corrupt("header length") }
            func text() throws -> String {
                let b = try field(&r)
                guard let s = String(validating: b, as: UTF8.self) else { throw StoreError.corrupt("text field") }
                return s
            }
            let tokenName = try text(), label = try text(), serial = try text(), uuid = try text()
            let backend = BackendDescriptor(kind: try text(), keyID: try text(), keyVersion: try text())
            let storeFormat = Int(try r.u32())
            let count = try r.u64(), created = try r.u64(), length = try r.u64()
            guard count <= UInt64(Int.max), length <= UInt64(maximumSnapshotLength) else { throw StoreError.corrupt("counts") }
            guard try text() == "scrypt" else { throw StoreError.corrupt("kdf") }
            let log2N = Int(try r.u32()), rr = Int(try r.u32()), pp = Int(try r.u32())
            let salt = try field(&r), sealed = try field(&r), dataSalt = try field(&r)
            guard r.offset == headerEnd, dataSalt.count == dataSaltLength else { throw StoreError.corrupt("header") }
            let c = try r.u64()
            let nonceStart = r.offset
            guard c >= 16, c == UInt64(body - nonceStart - 12), c - 16 == length else {
                throw StoreError.corrupt("ciphertext length")
            }
            let metadata = TokenBackupMetadata(
                backupVersion: v, tokenName: tokenName, label: label, serialNumber: serial, tokenUUID: uuid,
                backend: backend, storeFormatVersion: storeFormat, objectCount: Int(count),
                created: Int64(bitPattern: created), snapshotLength: Int(length))
            return Parsed(metadata: metadata, log2N: log2N, r: rr, p: pp, salt: salt, sealedEnvelope: sealed,
                          dataSalt: dataSalt, nonceRange: nonceStart..<(nonceStart + 12),
                          ciphertextRange: (nonceStart + 12)..<body)
        }
    }

    static func dataKey(envelopeKey: SecretBytes, salt: [UInt8], uuid: String) throws -> SecretBytes {
        try crypto { try KDF.hkdfSHA256(ikm: envelopeKey, salt: keySalt, info: salt + Array(uuid.utf8), length: 32) }
    }

    static func appendField(_ out: inout [UInt8], _ bytes: [UInt8]) throws {
        guard bytes.count <= Int(UInt16.max) else { throw StoreError.invalidArgument("backup header field too long") }
        RecordCodec.appendU16(&out, UInt16(bytes.count))
        out += bytes
    }

    static func field(_ r: inout RecordCodec.Reader) throws -> [UInt8] {
        try r.bytes(Int(try r.u16()))
    }

    static func trimmedLabel(_ label: [UInt8]) -> String {
        var b = label
        while let last = b.last, last == 0x20 || last == 0 { b.removeLast() }
        return String(decoding: b, as: UTF8.self)
    }

    /// A framing error after the digest matched can only be a file this build did not write: report it as damage.
    private static func damaged<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch let e as StoreError { throw TokenBackupError.damaged("malformed header (\(e))") }
    }

    private static func crypto<R>(_ body: () throws -> R) throws -> R {
        do { return try body() } catch let e as CryptoError { throw StoreError.crypto(e) }
    }
}

extension RecordCodec.Reader {
    mutating func u16() throws -> UInt16 { try bytes(2).reduce(0) { $0 << 8 | UInt16($1) } }
}

extension TokenDatabase {
    /// `PRAGMA integrity_check`: `["ok"]` for a sound file, else SQLite's list of problems.
    public func integrityCheck() throws -> [String] {
        try withConnection { conn in
            try conn.checkUsable()
            return try conn.driver.integrityCheck()
        }
    }

    /// Unseals every sealed attribute of every object with `keys` (values are wiped at once). Calls `progress`
    /// with (done, total) after each object. Returns the unique ids whose values do not open.
    public func verifySealedValues(keys: SessionKeys, progress: (Int, Int) -> Void = { _, _ in }) throws -> [String] {
        let objects = try allObjects()
        var failed: [String] = []
        for (i, object) in objects.enumerated() {
            for type in object.sealedAttributes.keys.sorted() {
                do {
                    _ = try unseal(object, attribute: type, keys: keys)
                } catch StoreError.integrityFailure {
                    failed.append(object.uniqueID)
                    break
                }
            }
            progress(i + 1, objects.count)
        }
        return failed
    }
}
