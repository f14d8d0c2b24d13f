#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Puts a restored database in place of a token's `token.sqlite` with **one** `rename(2)`, so that a process killed
/// at any point leaves a `token.sqlite` — the complete old database or the complete new one — and never a store
/// without one (docs/storage-format.md, "Restoring over a store").
///
/// Order: (1) the current database is kept under `token.sqlite.replaced-<stamp>` by hard links (main file and a
/// non-empty WAL; `token.sqlite` itself stays in place); (2) the current WAL and shared-memory index are removed —
/// a WAL left beside the new file would be replayed into it; (3) the staged file is renamed over `token.sqlite` and
/// the directory synced. The caller empties the current WAL into its main file first
/// (`TokenDatabase.checkpoint()`, then closing it), so that step (2) removes nothing but an empty log; only a
/// database SQLite cannot open at all still has a WAL here, which is kept aside with it.
public enum StoreReplacement {
    /// The points between the steps, for a test that stops the process there (`reached`).
    public enum Point: String, Sendable, CaseIterable {
        /// The current database is also reachable under its `.replaced-<stamp>` name; nothing else changed.
        case keptAside = "kept-aside"
        /// The current WAL and shared-memory files are gone; `token.sqlite` is still the current main file.
        case logRemoved = "log-removed"
        /// `token.sqlite` is the restored database.
        case replaced
    }

    /// Why the replacement stopped: path, step and errno text. Nothing of the store changed unless it says so.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Replaces `target` (`<store>/token.sqlite`) with `staged`, a closed database file (no `-wal`) in a directory of
    /// the same file system. `keepAsideStamp`: keep the current database as `<target>.replaced-<stamp>` (a `-2`,
    /// `-3`, … suffix when that name is taken) and return that path; nil: the current files (an uninitialised,
    /// empty database) are dropped. `reached` is called after each step.
    @discardableResult
    public static func replace(_ target: String, with staged: String, keepAsideStamp: String?,
                               reached: (Point) -> Void = { _ in }) throws -> String? {
        guard !exists(staged + "-wal") else {
            throw Failure(description: "the restored database \(staged) still has a WAL (it was not closed cleanly)")
        }
        var aside: String? = nil
        if let stamp = keepAsideStamp, exists(target) {
            let name = try freeAsideName(target + ".replaced-" + stamp)
            try hardLink(target, name, "keep the current database as")
            if size(target + "-wal") > 0 {
                do {
                    try hardLink(target + "-wal", name + "-wal", "keep the current WAL as")
                } catch {
                    unlink(name)
                    throw error
                }
            }
            try syncDirectory(of: target)
            aside = name
        }
        reached(.keptAside)
        for log in [target + "-wal", target + "-shm"] where unlink(log) != 0 && errno != ENOENT {
            throw Failure(description: "cannot remove \(log): \(String(cString: strerror(errno)))"
                + (aside.map { "; the current database is also kept as \($0)" } ?? ""))
        }
        reached(.logRemoved)
        guard rename(staged, target) == 0 else {
            throw Failure(description: "cannot move the restored database to \(target): \(String(cString: strerror(errno)))"
                + (aside.map { "; the current database is still in place (and also kept as \($0))" } ?? ""))
        }
        try syncDirectory(of: target)
        reached(.replaced)
        return aside
    }

    private static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    private static func size(_ path: String) -> Int64 {
        var st = stat()
        return lstat(path, &st) == 0 ? Int64(st.st_size) : -1
    }

    private static func freeAsideName(_ base: String) throws -> String {
        for n in 1...100 {
            let name = n == 1 ? base : base + "-\(n)"
            if !exists(name) && !exists(name + "-wal") && !exists(name + "-shm") { return name }
        }
        throw Failure(description: "no free name for keeping the current database (\(base) … \(base)-100 exist)")
    }

    private static func hardLink(_ from: String, _ to: String, _ what: String) throws {
        guard link(from, to) == 0 else {
            throw Failure(description: "cannot \(what) \(to): \(String(cString: strerror(errno))); nothing was changed")
        }
    }

    private static func syncDirectory(of file: String) throws {
        let directory: String
        if let slash = file.lastIndex(of: "/") {
            directory = slash == file.startIndex ? "/" : String(file[..<slash])
        } else {
            directory = "."
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open \(directory) to sync it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw Failure(description: "cannot sync \(directory): \(String(cString: strerror(errno)))") }
    }
}
