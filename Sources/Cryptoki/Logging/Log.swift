// The module's log: off/error by default, to stderr or an append-only file (created 0600). Never pass a secret here: no PIN,
// no key byte, no value of a sensitive attribute. Messages are built lazily (autoclosures), so a disabled
// level costs one atomic load.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

enum LogLevel: Int, Comparable, Sendable, CaseIterable {
    case off = 0, error, warning, info, debug

    init?(name: String) {
        switch name.lowercased() {
        case "off", "none": self = .off
        case "error": self = .error
        case "warning", "warn": self = .warning
        case "info": self = .info
        case "debug": self = .debug
        default: return nil
        }
    }

    var name: String {
        switch self {
        case .off: return "off"
        case .error: return "error"
        case .warning: return "warning"
        case .info: return "info"
        case .debug: return "debug"
        }
    }

    static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

final class Log: Sendable {
    static let shared = Log()

    private let level = Atomic<Int>(LogLevel.error.rawValue)
    /// The log file's FILE* as an address (0: stderr). Lock-free on purpose: a child after fork() must never
    /// find a lock held by a thread that no longer exists. stdio serialises each fputs itself.
    private let sink = Atomic<UInt>(0)
    /// Previously opened files are never closed (another thread may still be writing to one); reconfiguring
    /// happens once per C_Initialize, so the leak is bounded.

    /// Applies configuration: `level` (env TENSORGUARD_PKCS11_LOG wins), and `file` (nil: stderr).
    func configure(level configured: LogLevel, file: String?) {
        var effective = configured
        if let env = getenv("TENSORGUARD_PKCS11_LOG"), let l = LogLevel(name: String(cString: env)) {
            effective = l
        }
        level.store(effective.rawValue, ordering: .relaxed)
        var address: UInt = 0
        if let path = file, effective != .off {
            if let f = Log.openAppending(path) {
                address = UInt(bitPattern: f)
            } else {
                Log.writeStderr("tensorguard-pkcs11: cannot open log file \(path); logging to stderr\n")
            }
        }
        sink.store(address, ordering: .releasing)
    }

    /// The log file for appending; a new file is created 0600 (whatever the umask allows of it), never through
    /// fopen's 0666. An existing file keeps its mode.
    static func openAppending(_ path: String) -> UnsafeMutablePointer<FILE>? {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return nil }
        guard let f = fdopen(fd, "a") else {
            close(fd)
            return nil
        }
        return f
    }

    /// Applies only the environment override (before any configuration is read).
    func configureFromEnvironment() {
        if let env = getenv("TENSORGUARD_PKCS11_LOG"), let l = LogLevel(name: String(cString: env)) {
            level.store(l.rawValue, ordering: .relaxed)
        }
    }

    /// After fork in the child: keep logging to the same place (the FILE is the child's copy); nothing to undo.
    func abandonAfterFork() {}

    func enabled(_ l: LogLevel) -> Bool { l != .off && l.rawValue <= level.load(ordering: .relaxed) }

    func write(_ l: LogLevel, _ message: () -> String) {
        guard enabled(l) else { return }
        let line = "tensorguard-pkcs11[\(getpid())] \(l.name): \(message())\n"
        if let f = UnsafeMutablePointer<FILE>(bitPattern: sink.load(ordering: .acquiring)) {
            fputs(line, f)
            fflush(f)
        } else {
            Log.writeStderr(line)
        }
    }

    static func writeStderr(_ s: String) {
        var bytes = Array(s.utf8)
        bytes.withUnsafeMutableBytes { b in
            guard let base = b.baseAddress else { return }
            var off = 0
            while off < b.count {
                let n = Glibc.write(2, base + off, b.count - off)
                if n <= 0 { break }
                off += n
            }
        }
    }

    static func error(_ m: @autoclosure () -> String) { shared.write(.error, m) }
    static func warning(_ m: @autoclosure () -> String) { shared.write(.warning, m) }
    static func info(_ m: @autoclosure () -> String) { shared.write(.info, m) }
    static func debug(_ m: @autoclosure () -> String) { shared.write(.debug, m) }
}
