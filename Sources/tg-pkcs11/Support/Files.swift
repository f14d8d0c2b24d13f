// File input and output: reading through CryptoCore's BoundedFile (secrets straight into SecretBytes), writing
// atomically with POSIX calls; every failure names the file and the reason.
import CryptoCore
#if canImport(Glibc)
import Glibc
#endif

enum Files {
    /// Refuses absurd inputs before allocating (LWE1 with k = 4096 is 33 MB; allow a generous margin).
    static let maxInputBytes = 1 << 31

    private static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Reads a whole file into SecretBytes (key files, PIN files).
    static func readSecret(_ path: String, what: String) throws -> SecretBytes {
        do { return try BoundedFile.readSecret(path, limit: maxInputBytes) } catch { throw failure(error, path, what) }
    }

    /// Reads a whole (non-secret) file.
    static func read(_ path: String, what: String) throws -> [UInt8] {
        do { return try BoundedFile.read(path, limit: maxInputBytes) } catch { throw failure(error, path, what) }
    }

    private static func failure(_ error: any Error, _ path: String, _ what: String) -> CLIError {
        switch error as? BoundedFile.Failure {
        case .missing?: return CLIError("cannot open \(what) '\(path)': \(reason(ENOENT))")
        case .tooLarge?: return CLIError("\(what) '\(path)' is too large (more than \(maxInputBytes) bytes)")
        case let f?: return CLIError("\(what) '\(path)' \(f)")
        case nil: return CLIError("\(what) '\(path)': \(error)")
        }
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
    /// `mode` applies to a new file (ciphertexts and plaintexts: 0600 like the SDK's key files).
    static func write(_ bytes: [UInt8], to path: String, what: String, mode: mode_t = 0o600) throws {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        var st = stat()
        if stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            throw CLIError("cannot write \(what) '\(path)': it is a directory")
        }
        var template = Array((directory + "/.tg-pkcs11-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkstemp($0) } ?? -1 }
        guard fd >= 0 else { throw CLIError("cannot write \(what) '\(path)': \(reason(errno))") }
        let tempPath = template.withUnsafeBufferPointer { $0.baseAddress.map { String(cString: $0) } ?? "" }
        var ok = false
        defer {
            if !ok { unlink(tempPath) }
        }
        fchmod(fd, mode)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress.map { $0 + done }, bytes.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                throw CLIError("cannot write \(what) '\(path)': \(reason(e))")
            }
            done += n
        }
        guard fsync(fd) == 0, close(fd) == 0 else {
            throw CLIError("cannot write \(what) '\(path)': \(reason(errno))")
        }
        guard rename(tempPath, path) == 0 else {
            throw CLIError("cannot write \(what) '\(path)': \(reason(errno))")
        }
        ok = true
    }
}
