// A throwaway PostgreSQL server for tests (docs/plans/postgresql-store.md §5): initdb into a temp dir, then
// `pg_ctl start` on 127.0.0.1 on a free port, with password (SCRAM) authentication over TCP only.
//
// Every child process is bounded: its output goes to a log file (never a Pipe, which a postmaster inheriting the
// write end would keep open forever), it inherits no other descriptor of the test process, and each run has a
// deadline after which it is killed by PID (see `run`). A server that
// does not become ready throws with the tail of its log; a missing server binary throws `MissingDependency`.
// Under root (as on the dev VM and in CI) initdb and postgres refuse to run, so they run as the `postgres` user
// through runuser, in a temp dir that user owns.
import Foundation

public final class PostgresServer: @unchecked Sendable {
    public let host = "127.0.0.1"
    public let port: Int
    /// The bootstrap superuser initdb creates, and its password (random, per server).
    public let user = "tg_test"
    public let password: String
    public let database = "postgres"
    /// The temp dir holding everything (data, socket, logs); removed by `stop(removingFiles:)` and deinit.
    public let directory: String

    private let binDir: String
    private let dataDir: String
    private let socketDir: String
    private let serverLog: String
    private let toolLog: String
    private let runAsPostgres: Bool
    private let lock = NSLock()
    private var running = false
    private var removed = false

    /// `postgresql://tg_test@127.0.0.1:PORT/postgres` (no password: it is given apart).
    public var uri: String { "postgresql://\(user)@\(host):\(port)/\(database)" }
    /// The same as libpq keyword/value pairs.
    public var parameters: [(String, String)] {
        [("host", host), ("port", String(port)), ("user", user), ("dbname", database)]
    }
    public var isRunning: Bool { lock.withLock { running } }

    /// Creates the cluster and starts it (about 1–2 s).
    public init() throws {
        binDir = try Self.findBinDir()
        runAsPostgres = geteuid() == 0
        port = TestServers.closedPort()
        password = (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()

        var template = Array((runAsPostgres ? "/tmp" : FileManager.default.temporaryDirectory.path).utf8CString)
        template.removeLast()
        template += Array("/tg-pg-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ $0.baseAddress.flatMap { mkdtemp($0) } }) else {
            throw TestServerError("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: made)
        dataDir = directory + "/data"
        socketDir = directory + "/sock"
        serverLog = directory + "/server.log"
        toolLog = directory + "/tools.log"
        do {
            try setUp()
            try start()
        } catch {
            stop(removingFiles: true)
            throw error
        }
    }

    deinit { stop(removingFiles: true) }

    /// Starts the server on its data dir and port (`pg_ctl start -w -t 30`, then a bounded pg_isready loop).
    public func start() throws {
        lock.lock()
        defer { lock.unlock() }
        guard !running else { return }
        let rc = try run([binDir + "/pg_ctl", "start", "-D", dataDir, "-l", serverLog, "-w", "-t", "30", "-s"], timeout: 40)
        guard rc == 0 else {
            throw TestServerError("pg_ctl start exited \(rc): \(logTail())")
        }
        running = true
        let deadline = ProcessInfo.processInfo.systemUptime + 30
        while true {
            let ready = try run([binDir + "/pg_isready", "-q", "-h", host, "-p", String(port), "-t", "2"], timeout: 5)
            if ready == 0 { return }
            if ProcessInfo.processInfo.systemUptime > deadline {
                throw TestServerError("PostgreSQL on \(host):\(port) not ready within 30 s: \(logTail())")
            }
            usleep(100_000)
        }
    }

    /// An immediate shutdown (`pg_ctl stop -m immediate`, i.e. SIGQUIT: a crash for the clients), bounded; if
    /// pg_ctl fails or hangs, the postmaster is killed by the PID in postmaster.pid.
    public func stop() { stop(removingFiles: false) }

    /// `stop()`, then `start()` on the same data dir and port.
    public func restart() throws {
        stop()
        try start()
    }

    /// The last part of the server's log and of the tools' output (for failure messages).
    public func logTail() -> String {
        func tail(_ path: String) -> String {
            String(((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").suffix(1200))
        }
        return "server log: …\(tail(serverLog)) | tools: …\(tail(toolLog))"
    }

    private func stop(removingFiles: Bool) {
        lock.lock()
        defer { lock.unlock() }
        if running {
            running = false
            let rc = try? run([binDir + "/pg_ctl", "stop", "-D", dataDir, "-m", "immediate", "-w", "-t", "10", "-s"], timeout: 15)
            if rc != 0 { killPostmaster() }
        }
        if removingFiles && !removed {
            removed = true
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    /// SIGKILL to the PID on postmaster.pid's first line, then a bounded wait for it to go.
    private func killPostmaster() {
        guard let text = try? String(contentsOfFile: dataDir + "/postmaster.pid", encoding: .utf8),
              let first = text.split(separator: "\n").first, let pid = pid_t(first), pid > 1 else { return }
        kill(pid, SIGKILL)
        let deadline = ProcessInfo.processInfo.systemUptime + 5
        while kill(pid, 0) == 0 && ProcessInfo.processInfo.systemUptime < deadline { usleep(20_000) }
    }

    // MARK: - Cluster creation

    private func setUp() throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: socketDir, withIntermediateDirectories: false)
        let pwfile = directory + "/pwfile"
        guard fm.createFile(atPath: pwfile, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600]),
              fm.createFile(atPath: serverLog, contents: nil), fm.createFile(atPath: toolLog, contents: nil) else {
            throw TestServerError("cannot create files in \(directory)")
        }
        try ownByPostgres([directory, socketDir, pwfile, serverLog])
        let rc = try run([binDir + "/initdb", "-D", dataDir, "-U", user, "--auth=scram-sha-256", "--pwfile=" + pwfile,
                          "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"], timeout: 60)
        try? fm.removeItem(atPath: pwfile)
        guard rc == 0 else { throw TestServerError("initdb exited \(rc): \(logTail())") }

        // Only TCP on 127.0.0.1 with SCRAM; the Unix socket (needed by pg_ctl's own checks) lives in the temp dir
        // and matches no pg_hba.conf line.
        let settings = """

            # PostgresServer (TestSupport)
            listen_addresses = '127.0.0.1'
            port = \(port)
            unix_socket_directories = '\(socketDir)'
            max_connections = 20
            shared_buffers = 16MB
            password_encryption = 'scram-sha-256'

            """
        try append(settings, to: dataDir + "/postgresql.conf")
        let hba = "# PostgresServer (TestSupport): TCP from 127.0.0.1 with SCRAM only\nhost all all 127.0.0.1/32 scram-sha-256\n"
        guard let handle = FileHandle(forWritingAtPath: dataDir + "/pg_hba.conf") else {
            throw TestServerError("cannot open \(dataDir)/pg_hba.conf")
        }
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data(hba.utf8))
        try handle.close()
    }

    private func append(_ text: String, to path: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else { throw TestServerError("cannot open \(path)") }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }

    private func ownByPostgres(_ paths: [String]) throws {
        guard runAsPostgres else { return }
        guard let entry = getpwnam("postgres") else {
            throw MissingDependency("no `postgres` user to run the PostgreSQL server as (Debian package postgresql; run scripts/install-deps.sh)")
        }
        for path in paths where chown(path, entry.pointee.pw_uid, entry.pointee.pw_gid) != 0 {
            throw TestServerError("chown \(path): \(String(cString: strerror(errno)))")
        }
        guard chmod(directory, 0o700) == 0 else { throw TestServerError("chmod \(directory) failed") }
    }

    // MARK: - Children

    /// Runs `arguments` (as `postgres` under root) in `/`, with stdin from /dev/null, output appended to the
    /// tools' log and every other descriptor closed; after `timeout` seconds SIGTERM, then SIGKILL, by PID.
    /// Returns the exit status (-1 when killed or signalled).
    ///
    /// Not Foundation's `Process`: it hands the child one end of a socketpair (not close-on-exec) and reports the
    /// child as running until every holder of that end has closed it. `pg_ctl start` leaves the postmaster holding
    /// it, so `isRunning` and `waitUntilExit` would wait for the server to stop: that hung the first version of
    /// this class. posix_spawn with `closefrom(3)` and waitpid(WNOHANG) keep the postmaster free of our
    /// descriptors and the wait bounded.
    private func run(_ arguments: [String], timeout: TimeInterval) throws -> Int32 {
        let argv = runAsPostgres ? ["/usr/sbin/runuser", "-u", "postgres", "--"] + arguments : arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PG") }
        environment["LC_ALL"] = "C"
        let log = open(toolLog, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard log >= 0 else { throw TestServerError("cannot open \(toolLog): \(String(cString: strerror(errno)))") }
        defer { close(log) }
        let header = "$ \(arguments.joined(separator: " "))\n"
        _ = header.withCString { write(log, $0, strlen($0)) }

        var owned: [UnsafeMutablePointer<CChar>] = []
        defer { owned.forEach { free($0) } }
        func cStrings(_ strings: [String]) throws -> [UnsafeMutablePointer<CChar>?] {
            var result: [UnsafeMutablePointer<CChar>?] = []
            for string in strings {
                guard let copy = strdup(string) else { throw TestServerError("out of memory") }
                owned.append(copy)
                result.append(copy)
            }
            return result + [nil]
        }
        let cArguments = try cStrings(argv)
        let cEnvironment = try cStrings(environment.map { "\($0.key)=\($0.value)" })

        var actions = posix_spawn_file_actions_t()
        guard posix_spawn_file_actions_init(&actions) == 0 else { throw TestServerError("posix_spawn_file_actions_init failed") }
        defer { posix_spawn_file_actions_destroy(&actions) }
        guard posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) == 0,
              posix_spawn_file_actions_adddup2(&actions, log, 1) == 0,
              posix_spawn_file_actions_adddup2(&actions, log, 2) == 0,
              Self.addClosefrom(&actions, 3) == 0,
              Self.addChdir(&actions, "/") == 0 else {
            throw TestServerError("posix_spawn file actions failed")
        }
        var pid: pid_t = 0
        let spawned = cArguments.withUnsafeBufferPointer { a in
            cEnvironment.withUnsafeBufferPointer { e in
                guard let a = a.baseAddress, let e = e.baseAddress else { return EINVAL }
                return posix_spawn(&pid, argv[0], &actions, nil, a, e)
            }
        }
        guard spawned == 0 else { throw TestServerError("cannot run \(argv[0]): \(String(cString: strerror(spawned)))") }

        var status: Int32 = 0
        func reaped() -> Bool {
            while true {
                let rc = waitpid(pid, &status, WNOHANG)
                if rc == pid { return true }
                if rc == 0 { return false }
                if errno != EINTR { return true }  // ECHILD: nothing left to wait for
            }
        }
        func waitFor(_ seconds: TimeInterval) -> Bool {
            let deadline = ProcessInfo.processInfo.systemUptime + seconds
            while ProcessInfo.processInfo.systemUptime < deadline {
                if reaped() { return true }
                usleep(10_000)
            }
            return reaped()
        }
        if waitFor(timeout) {
            // Exited normally: status & 0x7f == 0, code in bits 8–15 (WIFEXITED / WEXITSTATUS).
            return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
        }
        kill(pid, SIGTERM)
        if !waitFor(3) {
            kill(pid, SIGKILL)
            _ = waitFor(5)
        }
        _ = "(killed after \(Int(timeout)) s)\n".withCString { write(log, $0, strlen($0)) }
        return -1
    }

    // glibc's posix_spawn_file_actions_addclosefrom_np (2.34) and _addchdir_np (2.29) are not visible through the
    // Glibc module (they need _GNU_SOURCE): looked up with dlsym, ENOSYS when missing.
    private typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32

    private static func addClosefrom(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ from: Int32) -> Int32 {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return ENOSYS }
        return unsafeBitCast(symbol, to: AddClosefrom.self)(actions, from)
    }

    private static func addChdir(_ actions: UnsafeMutablePointer<posix_spawn_file_actions_t>, _ path: String) -> Int32 {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np") else { return ENOSYS }
        return path.withCString { unsafeBitCast(symbol, to: AddChdir.self)(actions, $0) }
    }

    /// `TG_TEST_PG_BIN`, else the newest /usr/lib/postgresql/N/bin holding initdb, pg_ctl, postgres, pg_isready.
    private static func findBinDir() throws -> String {
        let fm = FileManager.default
        let tools = ["initdb", "pg_ctl", "postgres", "pg_isready"]
        func complete(_ dir: String) -> Bool { tools.allSatisfy { fm.isExecutableFile(atPath: dir + "/" + $0) } }
        if let dir = ProcessInfo.processInfo.environment["TG_TEST_PG_BIN"] {
            guard complete(dir) else { throw MissingDependency("TG_TEST_PG_BIN=\(dir) lacks one of \(tools.joined(separator: ", ")): unset it to use Debian's, or run scripts/install-deps.sh") }
            return dir
        }
        let versions = ((try? fm.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? [])
            .compactMap { Int($0) }.sorted(by: >)
        for version in versions where complete("/usr/lib/postgresql/\(version)/bin") {
            return "/usr/lib/postgresql/\(version)/bin"
        }
        throw MissingDependency.postgreSQL
    }
}

extension MissingDependency {
    public static let postgreSQL = MissingDependency(
        "the PostgreSQL server is not installed (no /usr/lib/postgresql/*/bin/initdb; Debian package postgresql): run scripts/install-deps.sh")
}

/// One PostgresServer for a test class: started by the first test that asks for it (a start that failed fails
/// every later test of the class the same way), stopped by `stop()` in the class's tearDown.
public final class SharedPostgresServer: @unchecked Sendable {
    private let lock = NSLock()
    private var server: PostgresServer?
    private var startFailure: Error?

    public init() {}

    public func get() throws -> PostgresServer {
        try lock.withLock {
            if let server { return server }
            if let startFailure { throw startFailure }
            do {
                let started = try PostgresServer()
                server = started
                return started
            } catch {
                startFailure = error
                throw error
            }
        }
    }

    /// Drops the server (its deinit stops it and removes its files).
    public func stop() {
        lock.withLock { server = nil }
    }
}
