// The one whole-file reader of the layers (configuration, backend credential files, AWS shared files, the audit
// log, the CLI's key, PIN and ciphertext files): a regular file only, its size bounded before anything is
// allocated, read into public bytes or straight into SecretBytes (never a growing array that leaves copies).
// Callers turn a `BoundedFile.Failure` into their own error with the file's role in it.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum BoundedFile {
    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        /// ENOENT or ENOTDIR at open.
        case missing
        /// open, fstat or read failed with this errno.
        case unreadable(errno: Int32)
        case notRegularFile
        case tooLarge(limit: Int)
        /// The file's length moved between fstat and the end of reading.
        case changedWhileRead
        /// The caller's check of the open file (owner, mode) refused it.
        case refused(String)

        public var description: String {
            switch self {
            case .missing: return "does not exist"
            case .unreadable(let e): return "cannot be read (\(String(cString: strerror(e))))"
            case .notRegularFile: return "is not a regular file"
            case .tooLarge(let limit): return "is larger than \(limit) bytes"
            case .changedWhileRead: return "changed while it was being read"
            case .refused(let reason): return reason
            }
        }
    }

    /// The whole file as public bytes. Throws `Failure`, or what `check` throws. `check` sees the open file's stat (no race with the path) and may refuse.
    public static func read(_ path: String, limit: Int, check: ((stat) throws -> Void)? = nil) throws -> [UInt8] {
        let (fd, size) = try openRegular(path, limit: limit, check: check)
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: size)
        try out.withUnsafeMutableBytes { raw in try fill(fd, raw) }
        return out
    }

    /// The whole file straight into SecretBytes (PIN files, key files, cloud credentials). Throws `Failure`, or what `check` throws.
    public static func readSecret(_ path: String, limit: Int, check: ((stat) throws -> Void)? = nil) throws -> SecretBytes {
        let (fd, size) = try openRegular(path, limit: limit, check: check)
        defer { close(fd) }
        let out = SecretBytes(count: size)
        try out.withUnsafeMutableBytes { raw in try fill(fd, raw) }
        return out
    }

    private static func openRegular(_ path: String, limit: Int, check: ((stat) throws -> Void)?) throws -> (Int32, Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            throw e == ENOENT || e == ENOTDIR ? Failure.missing : Failure.unreadable(errno: e)
        }
        var info = stat()
        do {
            guard fstat(fd, &info) == 0 else { throw Failure.unreadable(errno: errno) }
            guard info.st_mode & S_IFMT == S_IFREG else { throw Failure.notRegularFile }
            guard info.st_size >= 0, info.st_size <= limit else { throw Failure.tooLarge(limit: limit) }
            try check?(info)
        } catch {
            close(fd)
            throw error
        }
        return (fd, Int(info.st_size))
    }

    /// Reads exactly `out.count` bytes and then requires the end of the file.
    private static func fill(_ fd: Int32, _ out: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < out.count {
            let n = systemRead(fd, out.baseAddress.map { $0 + done }, out.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure.unreadable(errno: errno)
            }
            if n == 0 { throw Failure.changedWhileRead }
            done += n
        }
        var probe: UInt8 = 0
        while true {
            let n = systemRead(fd, &probe, 1)
            if n < 0 && errno == EINTR { continue }
            if n != 0 { throw Failure.changedWhileRead }
            return
        }
    }
}

#if canImport(Glibc)
private let systemRead = Glibc.read
#elseif canImport(Darwin)
private let systemRead = Darwin.read
#endif
