#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The ownership rule for a file whose contents decide what runs in the caller's process (a PKCS#11 backend
/// module we dlopen), after OpenSSH's: with symlinks resolved, the file and every directory above it are owned by
/// root or by the calling user, and none is writable by group or others — except a root-owned sticky directory
/// (such as /tmp), where nobody but an entry's owner may replace that entry.
public enum TrustedFile {
    /// nil when `path` may be trusted, else why not (path and reason, for the log and the error).
    public static func problem(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return "\(path): cannot resolve (errno \(errno))" }
        let real = String(cString: resolved)
        free(resolved)
        let me = geteuid()
        var current = real
        var isFile = true
        while true {
            var st = stat()
            guard stat(current, &st) == 0 else { return "\(current): cannot stat (errno \(errno))" }
            if st.st_uid != 0 && st.st_uid != me {
                return "\(current) is owned by uid \(st.st_uid), neither root nor the calling user (uid \(me))"
            }
            let writableByOthers = st.st_mode & (S_IWGRP | S_IWOTH) != 0
            let stickyRootDirectory = !isFile && st.st_mode & S_ISVTX != 0 && st.st_uid == 0
            if writableByOthers && !stickyRootDirectory {
                return "\(current) is writable by group or others (chmod go-w)"
            }
            if current == "/" { return nil }
            isFile = false
            if let slash = current.lastIndex(of: "/") {
                current = slash == current.startIndex ? "/" : String(current[..<slash])
            } else {
                return nil
            }
        }
    }
}
