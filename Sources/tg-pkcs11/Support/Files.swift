// File input and output with POSIX calls, so that secrets are read straight into a SecretBuffer and
// every failure names the file and the reason.
#if canImport(Glibc)
import Glibc
#endif

enum Files {
    /// Refuses absurd inputs before allocating (LWE1 with k = 4096 is 33 MB; allow a generous margin).
    static let maxInputBytes = 1 << 31

    private static func reason(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Opens a regular file for reading and returns its descriptor and size.
    private static func openRegular(_ path: String, what: String) throws -> (Int32, Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("cannot open \(what) '\(path)': \(reason(errno))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            throw CLIError("cannot stat \(what) '\(path)': \(reason(e))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw CLIError("\(what) '\(path)' is not a regular file")
        }
        let size = Int(st.st_size)
        guard size <= maxInputBytes else {
            close(fd)
            throw CLIError("\(what) '\(path)' is too large (\(size) bytes)")
        }
        return (fd, size)
    }

    /// Reads a whole file into a SecretBuffer (key files, PIN files).
    static func readSecret(_ path: String, what: String) throws -> SecretBuffer {
        let (fd, size) = try openRegular(path, what: what)
        defer { close(fd) }
        let buffer = SecretBuffer(capacity: size)
        while buffer.count < size {
            let n = buffer.withUnsafeMutableSpareBytes { spare in Glibc.read(fd, spare.baseAddress, spare.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIError("cannot read \(what) '\(path)': \(reason(errno))")
            }
            if n == 0 { break }
            buffer.extend(by: n)
        }
        guard buffer.count == size else { throw CLIError("\(what) '\(path)' changed while it was being read") }
        return buffer
    }

    /// Reads a whole (non-secret) file.
    static func read(_ path: String, what: String) throws -> [UInt8] {
        let (fd, size) = try openRegular(path, what: what)
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { raw in
                Glibc.read(fd, raw.baseAddress.map { $0 + done }, size - done)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIError("cannot read \(what) '\(path)': \(reason(errno))")
            }
            if n == 0 { break }
            done += n
        }
        guard done == size else { throw CLIError("\(what) '\(path)' changed while it was being read") }
        return bytes
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
