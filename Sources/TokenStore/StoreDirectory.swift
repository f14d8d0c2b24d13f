import CSQLite
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A token's store directory on disk: created on first use (with any missing parents, mode 0700) and identified
/// by device and inode, so that two configured paths naming one directory (a symlink, a trailing slash, `..`)
/// are recognised as one store.
public struct StoreDirectory: Sendable, Hashable {
    public let device: UInt64
    public let inode: UInt64
    /// The path with symlinks resolved.
    public let resolvedPath: String

    /// Why a store directory cannot be used: the path and the errno, for the log line.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let path: String
        public let operation: String
        public let errno: Int32
        public var description: String {
            "cannot \(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }

    /// Creates `path` and its missing parents (mode 0700; existing directories are left as they are), then
    /// resolves and identifies it. Throws `Failure` naming the component that failed.
    public static func prepare(_ path: String) throws -> StoreDirectory {
        guard path.hasPrefix("/") else { throw Failure(path: path, operation: "use relative store path", errno: EINVAL) }
        var prefix = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0 {
                let e = errno
                guard e == EEXIST else { throw Failure(path: prefix, operation: "create directory", errno: e) }
            }
        }
        guard let resolved = realpath(path, nil) else { throw Failure(path: path, operation: "resolve", errno: errno) }
        defer { free(resolved) }
        var st = stat()
        guard stat(resolved, &st) == 0 else { throw Failure(path: path, operation: "stat", errno: errno) }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw Failure(path: path, operation: "use (not a directory)", errno: ENOTDIR) }
        return StoreDirectory(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), resolvedPath: String(cString: resolved))
    }

    /// Creates `path` (mode 0700) and its missing parents, leaving existing directories as they are.
    static func createPrivate(_ path: String) throws {
        var prefix = ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if mkdir(prefix, 0o700) != 0, errno != EEXIST {
                throw StoreError.database(code: SQLITE_CANTOPEN, message: "cannot create directory \(prefix) (errno \(errno))")
            }
        }
    }
}
