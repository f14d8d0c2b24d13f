// Where PINs come from: --pin-env VAR, --pin-file PATH, the environment variable TG_PKCS11_PIN, else an
// interactive prompt on the terminal with echo switched off. Never from a plain argument value: command
// lines are visible to every local user (ps, /proc/PID/cmdline) and end up in shell history.
#if canImport(Glibc)
import Glibc
#endif
import CryptoCore

enum PINSource {
    case environment(String)
    case file(String)
    case prompt(String)

    static let maxPINLength = 256

    /// Picks the source: explicit options first, then `defaultEnvironment`, then a prompt when stdin is a
    /// terminal; throws a clear error otherwise.
    static func resolve(envOption: String?, fileOption: String?, defaultEnvironment: String,
                        prompt: String, optionNames: (env: String, file: String)) throws -> PINSource {
        if envOption != nil && fileOption != nil {
            throw CLIError("give either \(optionNames.env) or \(optionNames.file), not both")
        }
        if let name = envOption { return .environment(name) }
        if let path = fileOption { return .file(path) }
        if getenv(defaultEnvironment) != nil { return .environment(defaultEnvironment) }
        guard isatty(STDIN_FILENO) == 1 else {
            throw CLIError("no PIN given and standard input is not a terminal: use \(optionNames.env) VAR, "
                + "\(optionNames.file) PATH or the environment variable \(defaultEnvironment)")
        }
        return .prompt(prompt)
    }

    /// The PIN as `SecretBytes` (wiped when the last reference goes). File and terminal input is gathered in a
    /// fixed-capacity `SecretBuffer` (never reallocated, wiped on deinit) and copied once into the result.
    func read() throws -> SecretBytes {
        let pin: SecretBytes
        switch self {
        case .environment(let name):
            guard let value = getenv(name) else { throw CLIError("environment variable \(name) (PIN) is not set") }
            let length = strlen(value)
            guard length <= Self.maxPINLength else { throw CLIError("the PIN in \(name) is longer than \(Self.maxPINLength) bytes") }
            pin = SecretBytes(copying: UnsafeRawBufferPointer(start: value, count: length))
            guard pin.count > 0 else { throw CLIError("environment variable \(name) (PIN) is empty") }
        case .file(let path):
            let file = try Files.readSecret(path, what: "PIN file")
            // The first line is the PIN; a trailing newline (CR LF too) is not part of it.
            let line = SecretBuffer(capacity: min(file.count, Self.maxPINLength))
            var tooLong = false
            file.withUnsafeBytes { bytes in
                for byte in bytes {
                    if byte == 0x0A { break }
                    if !line.append(byte) { tooLong = true; break }
                }
            }
            line.trimTrailing { $0 == 0x0D }
            pin = line.withUnsafeBytes { SecretBytes(copying: $0) }
            guard !tooLong else { throw CLIError("the PIN in '\(path)' is longer than \(Self.maxPINLength) bytes") }
            guard pin.count > 0 else { throw CLIError("PIN file '\(path)' is empty") }
            var st = stat()
            if stat(path, &st) == 0, st.st_mode & 0o077 != 0 {
                warn("PIN file '\(path)' is accessible by group or others; chmod 600 it")
            }
        case .prompt(let prompt):
            pin = try Self.promptWithoutEcho(prompt).withUnsafeBytes { SecretBytes(copying: $0) }
            guard pin.count > 0 else { throw CLIError("empty PIN") }
        }
        return pin
    }

    /// Reads one line from the terminal on stdin with ECHO off; the terminal is restored afterwards,
    /// also when the user interrupts with Ctrl-C.
    private static func promptWithoutEcho(_ prompt: String) throws -> SecretBuffer {
        writeStandardError(prompt)
        var saved = termios()
        guard tcgetattr(STDIN_FILENO, &saved) == 0 else {
            throw CLIError("cannot read the PIN: the terminal does not allow switching off echo")
        }
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        quiet.c_lflag |= tcflag_t(ICANON)
        savedTerminal = saved
        let previousINT = signal(SIGINT, restoreTerminalAndExit)
        let previousTERM = signal(SIGTERM, restoreTerminalAndExit)
        guard tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0 else {
            throw CLIError("cannot read the PIN: the terminal does not allow switching off echo")
        }
        defer {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
            savedTerminal = nil
            signal(SIGINT, previousINT)
            signal(SIGTERM, previousTERM)
            writeStandardError("\n")
        }
        let pin = SecretBuffer(capacity: maxPINLength)
        var byte: UInt8 = 0
        while true {
            let n = Glibc.read(STDIN_FILENO, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || byte == 0x0A { break }
            if !pin.append(byte) { throw CLIError("the PIN is longer than \(maxPINLength) bytes") }
        }
        byte = 0
        pin.trimTrailing { $0 == 0x0D }
        return pin
    }
}

/// The terminal state to restore from a signal handler while echo is off.
nonisolated(unsafe) private var savedTerminal: termios?

private func restoreTerminalAndExit(_ signalNumber: Int32) {
    if var saved = savedTerminal {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
    }
    _exit(128 + signalNumber)
}

/// A warning on stderr (never secrets).
func warn(_ message: String) {
    writeStandardError("warning: \(message)\n")
}

/// Unbuffered write to file descriptor 2.
func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { Glibc.write(STDERR_FILENO, $0.baseAddress.map { $0 + done }, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        done += n
    }
    bytes.removeAll()
}
