// A one-line progress bar on stderr for commands that walk many objects. Drawn only when stderr is a terminal
// and the command is not printing JSON; otherwise every call is a no-op, so scripts and logs stay clean.
#if canImport(Glibc)
import Glibc
#endif

final class Progress {
    private let title: String
    private let enabled: Bool
    private var lastDrawn = -1
    private var lastTime: timespec = timespec()
    private var drewSomething = false

    /// `quiet`: the caller prints JSON (or was asked for silence).
    init(_ title: String, quiet: Bool = false) {
        self.title = title
        self.enabled = !quiet && isatty(STDERR_FILENO) == 1
    }

    /// Redraws at most every 50 ms (and always at the end).
    func update(_ done: Int, of total: Int) {
        guard enabled, total > 0 else { return }
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let elapsedMS = (now.tv_sec - lastTime.tv_sec) * 1000 + (now.tv_nsec - lastTime.tv_nsec) / 1_000_000
        guard done == total || (done != lastDrawn && elapsedMS >= 50) else { return }
        lastDrawn = done
        lastTime = now
        let width = 30
        let filled = min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        writeStandardError("\r\(title) [\(bar)] \(done)/\(total)")
        drewSomething = true
    }

    /// Ends the line (if anything was drawn).
    func finish() {
        guard enabled, drewSomething else { return }
        writeStandardError("\n")
        drewSomething = false
    }
}
