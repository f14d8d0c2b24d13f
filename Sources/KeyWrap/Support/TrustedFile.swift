#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one ownership rule for every file the module trusts — a PKCS#11 backend module we dlopen, the
/// configuration file, a token's store directory and its database files — after OpenSSH's: with symlinks resolved
/// first (the resolved path is what is checked), the file and every directory above it up to `/` are owned by root
/// or by the calling user (effective uid), and none is writable by group or others — except a root-owned sticky
/// directory *above* the file (such as /tmp), where nobody but an entry's owner may replace that entry. The file
/// itself is never excused by a sticky bit (a 1777 store directory is refused).
public enum TrustedFile {
    /// nil when `path` may be trusted, else why not: the offending path (resolved) and the reason, one line for
    /// the log and the error. Never reads the file's contents.
    public static func problem(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return "\(path): cannot resolve (errno \(errno))" }
        let real = String(cString: resolved)
        free(resolved)
        let me = geteuid()
        let via = real == path ? "" : "; checked as the resolved path of \(path)"
        var current = real
        var isTarget = true
        while true {
            var st = stat()
            guard stat(current, &st) == 0 else { return "\(current): cannot stat (errno \(errno))\(via)" }
            if st.st_uid != 0 && st.st_uid != me {
                return "\(current) is owned by uid \(st.st_uid), neither root nor the calling user (uid \(me))\(via)"
            }
            let writableByOthers = st.st_mode & (S_IWGRP | S_IWOTH) != 0
            let stickyRootDirectory = !isTarget && st.st_mode & S_ISVTX != 0 && st.st_uid == 0
            if writableByOthers && !stickyRootDirectory {
                return "\(current) is group- or world-writable (mode 0\(String(st.st_mode & 0o7777, radix: 8)); chmod go-w)\(via)"
            }
            if current == "/" { return nil }
            isTarget = false
            if let slash = current.lastIndex(of: "/") {
                current = slash == current.startIndex ? "/" : String(current[..<slash])
            } else {
                return nil
            }
        }
    }
}
