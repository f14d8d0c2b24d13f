import CLibPQ
import CryptoCore
import KeyWrap
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// One libpq connection for the PostgreSQL token store (docs/plans/postgresql-store.md §1.4, §2.4, §2.6). Not yet
// used by any token: this is the client layer the store's driver will sit on.
//
// Every wait has a deadline: libpq is driven only through its asynchronous calls (PQconnectStartParams /
// PQconnectPoll, PQsendQueryParams, PQflush, PQconsumeInput, PQisBusy, PQgetResult) with poll(2) on its socket and
// CLOCK_MONOTONIC. A connect or statement that reaches its deadline closes the connection (PQfinish) and throws;
// nothing waits on the server beyond that. A SIGSTOPped server, whose kernel still acknowledges every segment,
// therefore cannot hang the caller, which neither tcp_user_timeout nor statement_timeout would prevent.
//
// One caveat that only the caller's parameters can avoid: libpq resolves a host *name* with a blocking
// getaddrinfo (inside PQconnectStartParams for the first host, PQconnectPoll for the next ones), which no deadline
// of ours can interrupt. Numeric addresses (or `hostaddr`) never wait on DNS.

/// A parameter or column value. Parameters go to the server in binary format with their type (int8, text, bytea,
/// bool; a NULL leaves the type to the server), and results come back in binary format.
public enum PostgresValue: Sendable, Equatable, CustomStringConvertible {
    case null
    /// int8; int2 and int4 columns are widened to it.
    case int8(Int64)
    /// text; varchar, name and bpchar columns too. UTF-8 (the session's client_encoding).
    case text(String)
    case bytea([UInt8])
    case bool(Bool)

    /// Never the value itself (a column may hold sealed material): the type, and the size of variable ones.
    public var description: String {
        switch self {
        case .null: return "null"
        case .int8: return "int8"
        case .text(let s): return "text(\(s.utf8.count) bytes)"
        case .bytea(let b): return "bytea(\(b.count) bytes)"
        case .bool: return "bool"
        }
    }
}

/// Why a PostgreSQL call failed. Messages are libpq's, or the server's primary message without its DETAIL (where
/// the server repeats key values, e.g. of a unique violation); never a password or a URI's userinfo. A primary
/// message can quote a value only when the statement itself converts a text value (`$1::text::int8` → "invalid
/// input syntax for type bigint: …"), which binary parameters of the right type never need.
public enum PostgresError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libpq.so.5 could not be loaded (the text is the loader's reason: "cannot load libpq.so.5 …").
    case libraryMissing(String)
    /// The connection parameters are unusable: a malformed URI, an inline password, a NUL byte, an unknown key.
    case invalidConfiguration(String)
    /// No connection: the connect failed or reached its deadline (wrong password included), or the connection was
    /// lost or closed. The next call needs a new connection.
    case unavailable(String)
    /// A statement did not complete within its deadline; the connection was closed (its outcome is unknown).
    case timedOut(String)
    /// The server refused the statement; the connection stays usable. `sqlstate` is the five-character code.
    case statement(sqlstate: String, message: String)
    /// The server answered something this client does not handle (a column type, COPY); the connection is closed
    /// when it cannot be used any more.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .libraryMissing(let m): return "PostgreSQL client library unavailable: \(m)"
        case .invalidConfiguration(let m): return "invalid PostgreSQL connection parameters: \(m)"
        case .unavailable(let m): return "PostgreSQL unavailable: \(m)"
        case .timedOut(let m): return "PostgreSQL statement timed out: \(m)"
        case .statement(let code, let m): return "PostgreSQL error \(code): \(m)"
        case .protocolViolation(let m): return "unexpected PostgreSQL response: \(m)"
        }
    }
}

/// The dlopen'ed libpq (Sources/CLibPQ).
public enum PostgresLibrary {
    /// Loads libpq.so.5 once per process; throws `.libraryMissing` with the loader's reason when it cannot.
    public static func load() throws {
        guard tg_pq_load() == 1 else { throw PostgresError.libraryMissing(String(cString: tg_pq_load_error())) }
    }

    /// PQlibVersion (e.g. 150018 for 15.18), or 0 when libpq is not loaded.
    public static var version: Int { Int(tg_pq_lib_version()) }
}

/// One connection to a PostgreSQL server. Not thread-safe: the caller serialises its use (the store's mutex).
/// In a child of fork(), call `abandonAfterFork()` (or just drop it: a connection opened by another process is
/// never PQfinish'ed), so that the child never talks on the parent's socket.
public final class PostgresConnection {
    private var handle: OpaquePointer?
    private let ownerPID: pid_t
    /// The deadline of calls that are given no other.
    public let timeout: Duration

    /// Result format code of libpq: 1 = binary.
    private static let binary: Int32 = 1

    /// Connects with the keyword/value pairs of a `postgresql://` or `postgres://` URI, split by libpq's own
    /// `PQconninfoParse` (see `parameters(fromURI:)`). `password`, when given, goes to libpq as a keyword value;
    /// the copy made for it is zeroised once libpq has taken its own. The connect, then the session setup
    /// (`synchronous_commit = on`), must finish within `timeout`, which is also the default deadline of statements.
    public convenience init(uri: String, password: SecretBytes? = nil, timeout: Duration) throws {
        try self.init(parameters: try Self.parameters(fromURI: uri), password: password, timeout: timeout)
    }

    /// Connects with libpq keyword/value pairs (`host`, `port`, `dbname`, `user`, `sslmode`, …; never `password`).
    /// Unless given, `application_name=tensorguard-pkcs11`, `client_encoding=UTF8` and `gssencmode=disable` are
    /// added. The pairs are used as they are (`expand_dbname = 0`).
    public init(parameters: [(String, String)], password: SecretBytes? = nil, timeout: Duration) throws {
        self.timeout = timeout
        self.ownerPID = getpid()
        try PostgresLibrary.load()
        let deadline = MonotonicInstant.now + timeout
        var pairs = parameters
        for (key, value) in pairs {
            guard !key.isEmpty, !key.utf8.contains(0), !value.utf8.contains(0) else {
                throw PostgresError.invalidConfiguration("empty key or NUL byte in a connection parameter")
            }
            guard key != "password" else {
                throw PostgresError.invalidConfiguration("a password is never a connection parameter: pass it separately")
            }
        }
        for (key, value) in [("application_name", "tensorguard-pkcs11"), ("client_encoding", "UTF8"),
                             ("gssencmode", "disable")] where !pairs.contains(where: { $0.0 == key }) {
            pairs.append((key, value))
        }
        if let password {
            let hasNUL = password.withUnsafeBytes { $0.contains(0) }
            guard !hasNUL else { throw PostgresError.invalidConfiguration("the password holds a NUL byte") }
        }
        handle = try Self.connect(pairs: pairs, password: password, deadline: deadline, timeout: timeout)
        tg_pq_silence_notices(handle)   // a host process's stderr is not ours to write server notices on
        _ = try query("SELECT pg_catalog.set_config('synchronous_commit', 'on', false)", [], deadline: deadline)
    }

    deinit {
        // A connection inherited through fork() belongs to the parent: PQfinish here would send Terminate on the
        // parent's socket and end its session.
        if let handle, getpid() == ownerPID { tg_pq_finish(handle) }
    }

    /// Whether the connection is still open (not closed, lost, timed out or abandoned).
    public var isOpen: Bool { handle != nil }

    /// Closes the connection (PQfinish: a Terminate message, then the socket). Idempotent.
    public func close() {
        guard let handle else { return }
        self.handle = nil
        if getpid() == ownerPID { tg_pq_finish(handle) }
    }

    /// Forgets the connection without PQfinish, for a child of fork(): the socket and libpq's state stay the
    /// parent's. Later calls throw `.unavailable`.
    public func abandonAfterFork() { handle = nil }

    /// A run-time parameter the server reported (PQparameterStatus): `server_version`, `client_encoding`, …
    public func parameterStatus(_ name: String) -> String? {
        guard let handle, let value = tg_pq_parameter_status(handle, name) else { return nil }
        return String(cString: value)
    }

    /// Whether the connection uses TLS (PQsslInUse).
    public var sslInUse: Bool {
        guard let handle else { return false }
        return tg_pq_ssl_in_use(handle) == 1
    }

    // MARK: - Statements

    /// Runs one statement with `params` ($1, $2, … in binary format) and returns its rows, each column decoded
    /// from binary format. The statement must finish by `timeout` (default: the connection's).
    @discardableResult
    public func query(_ sql: String, _ params: [PostgresValue] = [], timeout: Duration? = nil) throws -> [[PostgresValue]] {
        try query(sql, params, deadline: MonotonicInstant.now + (timeout ?? self.timeout))
    }

    @discardableResult
    public func query(_ sql: String, _ params: [PostgresValue], deadline: MonotonicInstant) throws -> [[PostgresValue]] {
        try statement(sql, params, deadline: deadline).rows
    }

    /// Runs one statement and returns the number of rows it affected (PQcmdTuples; 0 when it reports none).
    public func execute(_ sql: String, _ params: [PostgresValue] = [], timeout: Duration? = nil) throws -> Int64 {
        try statement(sql, params, timeout: timeout).affected
    }

    /// Runs one statement; returns its rows and the number of rows it affected (PQcmdTuples).
    public func statement(_ sql: String, _ params: [PostgresValue] = [], timeout: Duration? = nil) throws
        -> (rows: [[PostgresValue]], affected: Int64) {
        try statement(sql, params, deadline: MonotonicInstant.now + (timeout ?? self.timeout))
    }

    private func statement(_ sql: String, _ params: [PostgresValue], deadline: MonotonicInstant) throws
        -> (rows: [[PostgresValue]], affected: Int64) {
        let outcome = try run(params, deadline: deadline) { conn, count, types, values, lengths, formats in
            tg_pq_send_query_params(conn, sql, count, types, values, lengths, formats, Self.binary)
        }
        return (outcome.rows, outcome.affected)
    }

    /// Prepares `sql` as the named statement (PQsendPrepare), the parameter types left to the server.
    public func prepare(name: String, sql: String, timeout: Duration? = nil) throws {
        let deadline = MonotonicInstant.now + (timeout ?? self.timeout)
        _ = try run([], deadline: deadline) { conn, _, _, _, _, _ in
            tg_pq_send_prepare(conn, name, sql, 0, nil)
        }
    }

    /// Runs a statement prepared with `prepare(name:sql:)` (PQsendQueryPrepared) and returns its rows.
    @discardableResult
    public func queryPrepared(name: String, _ params: [PostgresValue] = [], timeout: Duration? = nil) throws -> [[PostgresValue]] {
        let deadline = MonotonicInstant.now + (timeout ?? self.timeout)
        return try run(params, deadline: deadline) { conn, count, _, values, lengths, formats in
            tg_pq_send_query_prepared(conn, name, count, values, lengths, formats, Self.binary)
        }.rows
    }

    // MARK: - URI

    /// Splits a `postgresql://` or `postgres://` URI into libpq keyword/value pairs with libpq's own parser
    /// (PQconninfoParse: multi-host lists, percent-decoding, query parameters). A URI with a password, as
    /// `user:password@` or `?password=`, is refused: passwords never go inline. Errors never repeat the URI.
    public static func parameters(fromURI uri: String) throws -> [(String, String)] {
        try PostgresLibrary.load()
        guard uri.hasPrefix("postgresql://") || uri.hasPrefix("postgres://") else {
            throw PostgresError.invalidConfiguration("not a postgresql:// or postgres:// URI")
        }
        guard !uri.utf8.contains(0) else { throw PostgresError.invalidConfiguration("NUL byte in the URI") }
        var message: UnsafeMutablePointer<CChar>? = nil
        guard let options = tg_pq_conninfo_parse(uri, &message) else {
            let reason = message.map { Self.withoutQuotedParts(String(cString: $0)) } ?? "out of memory"
            tg_pq_freemem(message)
            throw PostgresError.invalidConfiguration("malformed PostgreSQL URI: \(reason)")
        }
        defer { tg_pq_conninfo_free(options) }
        var pairs: [(String, String)] = []
        var option = options
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val { pairs.append((String(cString: keyword), String(cString: value))) }
            option = option.advanced(by: 1)
        }
        guard !pairs.contains(where: { $0.0 == "password" }) else {
            throw PostgresError.invalidConfiguration("the URI holds a password: never inline (give it separately)")
        }
        return pairs
    }

    /// libpq's URI messages quote the URI or a piece of it, which may hold a password: everything from the first
    /// double quote on is dropped ("invalid percent-encoded token: \"…\"" → "invalid percent-encoded token").
    static func withoutQuotedParts(_ message: String) -> String {
        var text = message.split(separator: "\"", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        while let last = text.last, last == " " || last == ":" || last == "\n" { text.removeLast() }
        return text.isEmpty ? "rejected by libpq" : text
    }

    // MARK: - Connecting

    private static func connect(pairs: [(String, String)], password: SecretBytes?, deadline: MonotonicInstant,
                                timeout: Duration) throws -> OpaquePointer {
        // C copies of the keywords and values in NULL-terminated arrays. The password's copy is zeroised right
        // after PQconnectStartParams, which keeps its own in the PGconn (libpq needs it for the SCRAM exchange).
        var owned: [UnsafeMutablePointer<CChar>] = []
        defer { for pointer in owned { free(pointer) } }
        func copy(_ text: String) throws -> UnsafePointer<CChar> {
            guard let pointer = strdup(text) else { throw PostgresError.unavailable("out of memory") }
            owned.append(pointer)
            return UnsafePointer(pointer)
        }
        var keys: [UnsafePointer<CChar>?] = []
        var values: [UnsafePointer<CChar>?] = []
        for (key, value) in pairs {
            keys.append(try copy(key))
            values.append(try copy(value))
        }
        var passwordCopy: UnsafeMutableRawBufferPointer?
        defer {
            if let passwordCopy {
                secureZero(passwordCopy)
                passwordCopy.deallocate()
            }
        }
        if let password {
            let (size, overflow) = password.count.addingReportingOverflow(1)
            guard !overflow else { throw PostgresError.invalidConfiguration("password too long") }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            passwordCopy = buffer
            password.withUnsafeBytes { source in
                if let base = source.baseAddress, let target = buffer.baseAddress, source.count > 0 {
                    target.copyMemory(from: base, byteCount: source.count)
                }
            }
            keys.append(try copy("password"))
            values.append(buffer.baseAddress.map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) })
        }
        keys.append(nil)
        values.append(nil)
        let started: OpaquePointer? = keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in tg_pq_connect_start_params(k.baseAddress, v.baseAddress, 0) }
        }
        if let passwordCopy { secureZero(passwordCopy) }
        guard let conn = started else { throw PostgresError.unavailable("out of memory") }
        func fail(_ what: String) -> PostgresError {
            let reason = Self.connectionMessage(conn, scrubbing: password)
            tg_pq_finish(conn)
            return .unavailable(reason.isEmpty ? what : "\(what): \(reason)")
        }
        guard tg_pq_status(conn) != CONNECTION_BAD else { throw fail("cannot connect") }
        // After a successful PQconnectStart, act as if PQconnectPoll had returned PGRES_POLLING_WRITING.
        var state = PGRES_POLLING_WRITING
        while state != PGRES_POLLING_OK {
            let events: Int16
            switch state {
            case PGRES_POLLING_FAILED: throw fail("cannot connect")
            case PGRES_POLLING_READING: events = Int16(POLLIN)
            case PGRES_POLLING_WRITING: events = Int16(POLLOUT)
            default: events = 0  // PGRES_POLLING_ACTIVE (unused since libpq 9): poll again at once
            }
            if events == 0 {
                guard MonotonicInstant.now < deadline else {
                    tg_pq_finish(conn)
                    throw PostgresError.unavailable("no connection within \(Self.milliseconds(timeout)) ms")
                }
            } else {
                let socket = tg_pq_socket(conn)
                guard socket >= 0 else { throw fail("cannot connect") }
                switch Self.wait(socket: socket, events: events, deadline: deadline) {
                case .ready: break
                case .timedOut:
                    tg_pq_finish(conn)
                    throw PostgresError.unavailable("no connection within \(Self.milliseconds(timeout)) ms")
                case .failed(let code):
                    tg_pq_finish(conn)
                    throw PostgresError.unavailable("poll failed while connecting (errno \(code))")
                }
            }
            state = tg_pq_connect_poll(conn)
        }
        guard tg_pq_set_nonblocking(conn, 1) == 0 else { throw fail("cannot switch the connection to non-blocking") }
        return conn
    }

    /// PQerrorMessage, trimmed, with every occurrence of the password's bytes replaced (libpq does not repeat a
    /// password, but a message is never trusted to hold none).
    private static func connectionMessage(_ conn: OpaquePointer, scrubbing password: SecretBytes?) -> String {
        guard let raw = tg_pq_error_message(conn) else { return "" }
        var bytes = Array(UnsafeBufferPointer(start: raw, count: strlen(raw))).map { UInt8(bitPattern: $0) }
        if let password, password.count > 0 {
            password.withUnsafeBytes { secret in
                var scrubbed: [UInt8] = []
                var i = 0
                while i < bytes.count {
                    if bytes.count - i >= secret.count,
                       bytes[i..<(i + secret.count)].elementsEqual(secret) {
                        scrubbed.append(contentsOf: Array("<redacted>".utf8))
                        i += secret.count
                    } else {
                        scrubbed.append(bytes[i])
                        i += 1
                    }
                }
                bytes = scrubbed
            }
        }
        return Self.trimmed(String(decoding: bytes, as: UTF8.self))
    }

    private static func trimmed(_ s: String) -> String {
        var text = Substring(s)
        while let last = text.last, last == "\n" || last == " " || last == "\r" { text.removeLast() }
        return String(text).split(separator: "\n").map { $0.trimmingPrefixSpaces() }.joined(separator: "; ")
    }

    // MARK: - Waiting

    private enum WaitOutcome { case ready, timedOut, failed(Int32) }

    /// poll(2) on `socket` for `events` until it is ready or `deadline` passes (EINTR restarts with the time left).
    private static func wait(socket: Int32, events: Int16, deadline: MonotonicInstant) -> WaitOutcome {
        while true {
            let (left, overflow) = deadline.nanoseconds.subtractingReportingOverflow(MonotonicInstant.now.nanoseconds)
            if overflow || left <= 0 { return .timedOut }
            // Rounded up, so that a wait never returns before the deadline only to spin.
            let milliseconds = Int32(clamping: left / 1_000_000 + (left % 1_000_000 == 0 ? 0 : 1))
            var descriptor = pollfd(fd: socket, events: events, revents: 0)
            let rc = poll(&descriptor, 1, milliseconds)
            if rc > 0 { return .ready }  // readable, writable, or POLLERR/POLLHUP: libpq sees which on its next call
            if rc < 0 && errno != EINTR { return .failed(errno) }
        }
    }

    private static func milliseconds(_ d: Duration) -> Int64 {
        let (seconds, attoseconds) = d.components
        let (ms, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        if overflow { return seconds < 0 ? .min : .max }
        return ms.addingReportingOverflow(attoseconds / 1_000_000_000_000_000).partialValue
    }

    // MARK: - Running a statement

    private struct Outcome {
        var rows: [[PostgresValue]] = []
        var affected: Int64 = 0
    }

    private typealias Sender = (OpaquePointer, Int32, UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?,
                                UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> Int32

    /// Marshals `params`, sends with `send`, flushes, then reads every result until PQgetResult returns NULL,
    /// waiting with poll(2) until `deadline` at each step.
    private func run(_ params: [PostgresValue], deadline: MonotonicInstant, send: Sender) throws -> Outcome {
        guard let conn = handle else { throw PostgresError.unavailable("the connection is closed") }
        let sent = try Self.withParameters(params) { count, types, values, lengths, formats in
            send(conn, count, types, values, lengths, formats)
        }
        guard sent == 1 else { throw lost(conn, "cannot send the statement") }
        // Flush: PQflush returns 1 while output is queued; the socket is then waited on for write (and read,
        // which libpq needs consumed for the server to go on reading).
        while true {
            let flushed = tg_pq_flush(conn)
            if flushed == 0 { break }
            guard flushed == 1 else { throw lost(conn, "cannot send the statement") }
            try wait(conn, events: Int16(POLLIN | POLLOUT), deadline: deadline)
            guard tg_pq_consume_input(conn) == 1 else { throw lost(conn, "connection lost") }
        }
        var outcome = Outcome()
        var failure: PostgresError?
        while true {
            while tg_pq_is_busy(conn) == 1 {
                try wait(conn, events: Int16(POLLIN), deadline: deadline)
                guard tg_pq_consume_input(conn) == 1 else { throw lost(conn, "connection lost") }
            }
            guard let result = tg_pq_get_result(conn) else { break }
            defer { tg_pq_clear(result) }
            let status = tg_pq_result_status(result)
            switch status {
            case PGRES_TUPLES_OK, PGRES_SINGLE_TUPLE:
                if failure == nil {
                    do { outcome.rows.append(contentsOf: try Self.decode(result)) } catch let e as PostgresError { failure = e }
                }
            case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                if let text = tg_pq_cmd_tuples(result), let n = Int64(String(cString: text)) { outcome.affected = n }
            case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR:
                let code = Self.field(result, "C")
                let message = Self.field(result, "M")
                // SQLSTATE class 08 (connection exception) and 57P01–57P03 (shutdown, crash, cannot connect now):
                // the session is over. libpq's own errors ("server closed the connection unexpectedly") have none.
                if code.isEmpty || code.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(code)
                    || tg_pq_status(conn) == CONNECTION_BAD {
                    let detail = message.isEmpty ? Self.errorMessage(conn) : message
                    close()
                    throw PostgresError.unavailable(code.isEmpty ? detail : "\(code): \(detail)")
                }
                if failure == nil { failure = .statement(sqlstate: code, message: message) }
            default:
                // COPY (PQgetResult would return it forever), PGRES_BAD_RESPONSE, pipeline states: never sent by
                // this client, so the session cannot be trusted any more.
                close()
                throw PostgresError.protocolViolation("result status \(status.rawValue)")
            }
        }
        if tg_pq_status(conn) == CONNECTION_BAD { throw lost(conn, "connection lost") }
        if let failure { throw failure }
        return outcome
    }

    /// Waits on the connection's socket; at the deadline the connection is closed and `.timedOut` thrown.
    private func wait(_ conn: OpaquePointer, events: Int16, deadline: MonotonicInstant) throws {
        let socket = tg_pq_socket(conn)
        guard socket >= 0 else { throw lost(conn, "connection lost") }
        switch Self.wait(socket: socket, events: events, deadline: deadline) {
        case .ready: return
        case .timedOut:
            close()
            throw PostgresError.timedOut("no answer by the deadline; the connection was closed")
        case .failed(let code):
            close()
            throw PostgresError.unavailable("poll failed (errno \(code))")
        }
    }

    /// Closes the connection and returns `.unavailable` with libpq's message.
    private func lost(_ conn: OpaquePointer, _ what: String) -> PostgresError {
        let reason = Self.errorMessage(conn)
        close()
        return .unavailable(reason.isEmpty ? what : "\(what): \(reason)")
    }

    /// PQerrorMessage, trimmed to one line ("" when libpq has none).
    private static func errorMessage(_ conn: OpaquePointer) -> String {
        guard let message = tg_pq_error_message(conn) else { return "" }
        return trimmed(String(cString: message))
    }

    private static func field(_ result: OpaquePointer, _ code: Unicode.Scalar) -> String {
        guard let value = tg_pq_result_error_field(result, Int32(code.value)) else { return "" }
        return String(cString: value)
    }

    // MARK: - Binary format

    private enum TypeOID {
        static let bool: Oid = 16, bytea: Oid = 17, name: Oid = 19, int8: Oid = 20, int2: Oid = 21, int4: Oid = 23
        static let text: Oid = 25, bpchar: Oid = 1042, varchar: Oid = 1043, void: Oid = 2278
    }

    /// The parameters' binary forms in one buffer (zeroised and freed afterwards), with the arrays libpq takes.
    private static func withParameters<R>(
        _ params: [PostgresValue],
        _ body: (Int32, UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?,
                 UnsafePointer<Int32>?) throws -> R
    ) throws -> R {
        // The protocol counts parameters in an Int16.
        guard params.count <= 65_535 else { throw PostgresError.invalidConfiguration("more than 65535 parameters") }
        var types: [Oid] = []
        var encoded: [[UInt8]?] = []
        for value in params {
            switch value {
            case .null:
                types.append(0)
                encoded.append(nil)
            case .int8(let v):
                types.append(TypeOID.int8)
                encoded.append(withUnsafeBytes(of: v.bigEndian) { Array($0) })
            case .text(let s):
                types.append(TypeOID.text)
                encoded.append(Array(s.utf8))
            case .bytea(let b):
                types.append(TypeOID.bytea)
                encoded.append(b)
            case .bool(let b):
                types.append(TypeOID.bool)
                encoded.append([b ? 1 : 0])
            }
        }
        var total = 0
        var lengths: [Int32] = []
        for bytes in encoded {
            let n = bytes?.count ?? 0
            guard let length = Int32(exactly: n) else { throw PostgresError.invalidConfiguration("parameter too large") }
            lengths.append(length)
            let (sum, overflow) = total.addingReportingOverflow(n)
            guard !overflow else { throw PostgresError.invalidConfiguration("parameters too large") }
            total = sum
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, total), alignment: 8)
        defer {
            secureZero(buffer)
            buffer.deallocate()
        }
        var pointers: [UnsafePointer<CChar>?] = []
        var offset = 0
        for bytes in encoded {
            guard let bytes else {
                pointers.append(nil)
                continue
            }
            // Offsets stay within `total` (the sum checked above); an empty value still gets a non-NULL pointer.
            let start = buffer.baseAddress.map { $0 + offset }
            if !bytes.isEmpty, let start {
                bytes.withUnsafeBytes { source in
                    if let base = source.baseAddress { start.copyMemory(from: base, byteCount: bytes.count) }
                }
            }
            pointers.append(start.map { UnsafePointer($0.assumingMemoryBound(to: CChar.self)) })
            offset += bytes.count
        }
        let formats = [Int32](repeating: binary, count: params.count)
        // The protocol carries the parameter count in 16 bits.
        guard params.count <= 65_535, let count = Int32(exactly: params.count) else {
            throw PostgresError.invalidConfiguration("more than 65535 parameters")
        }
        return try types.withUnsafeBufferPointer { t in
            try pointers.withUnsafeBufferPointer { p in
                try lengths.withUnsafeBufferPointer { l in
                    try formats.withUnsafeBufferPointer { f in
                        try body(count, t.baseAddress, p.baseAddress, l.baseAddress, f.baseAddress)
                    }
                }
            }
        }
    }

    /// Every row of a PGRES_TUPLES_OK result, decoded from binary format by column type.
    private static func decode(_ result: OpaquePointer) throws -> [[PostgresValue]] {
        let rowCount = tg_pq_ntuples(result), columnCount = tg_pq_nfields(result)
        guard rowCount >= 0, columnCount >= 0 else { throw PostgresError.protocolViolation("negative result size") }
        var types: [Oid] = []
        for column in 0..<columnCount { types.append(tg_pq_ftype(result, column)) }
        var rows: [[PostgresValue]] = []
        rows.reserveCapacity(Int(rowCount))
        for row in 0..<rowCount {
            var values: [PostgresValue] = []
            values.reserveCapacity(Int(columnCount))
            for column in 0..<columnCount {
                if tg_pq_getisnull(result, row, column) == 1 {
                    values.append(.null)
                    continue
                }
                let length = tg_pq_getlength(result, row, column)
                guard length >= 0, let pointer = tg_pq_getvalue(result, row, column) else {
                    throw PostgresError.protocolViolation("column \(column) has no value")
                }
                let bytes = UnsafeRawBufferPointer(start: pointer, count: Int(length))
                values.append(try decodeValue(bytes, type: types[Int(column)], column: column))
            }
            rows.append(values)
        }
        return rows
    }

    private static func decodeValue(_ bytes: UnsafeRawBufferPointer, type: Oid, column: Int32) throws -> PostgresValue {
        func integer(_ size: Int) throws -> Int64 {
            guard bytes.count == size else {
                throw PostgresError.protocolViolation("column \(column): \(bytes.count) bytes for a \(size)-byte integer")
            }
            var value: UInt64 = 0
            for byte in bytes { value = value << 8 | UInt64(byte) }
            // Sign-extend from `size` bytes.
            let shift = UInt64(64 - 8 * size)
            return Int64(bitPattern: value << shift) >> shift
        }
        switch type {
        case TypeOID.int8: return .int8(try integer(8))
        case TypeOID.int4: return .int8(try integer(4))
        case TypeOID.int2: return .int8(try integer(2))
        case TypeOID.bool:
            guard bytes.count == 1 else { throw PostgresError.protocolViolation("column \(column): bool of \(bytes.count) bytes") }
            return .bool(bytes[0] != 0)
        case TypeOID.text, TypeOID.varchar, TypeOID.name, TypeOID.bpchar:
            return .text(String(decoding: bytes, as: UTF8.self))
        case TypeOID.bytea: return .bytea(Array(bytes))
        case TypeOID.void: return .null
        default: throw PostgresError.protocolViolation("column \(column) has type OID \(type), which is not decoded")
        }
    }
}

private extension Substring {
    func trimmingPrefixSpaces() -> Substring {
        var s = self
        while let first = s.first, first == " " || first == "\t" { s.removeFirst() }
        return s
    }
}
