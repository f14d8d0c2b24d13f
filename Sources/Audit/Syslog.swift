// RFC 5424 messages to a local Unix datagram socket (default /dev/log): facility authpriv, severity info for
// successes and warning for failures; MSG is the record's JSON line, so a remote collector keeps the chain.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum Syslog {
    public static let defaultSocket = "/dev/log"
    static let appName = "tensorguard-pkcs11"
    static let facilityAuthpriv = 10

    static func hostname() -> String {
        var buf = [UInt8](repeating: 0, count: 256)
        let ok = buf.withUnsafeMutableBytes { raw -> Bool in
            guard let p = raw.baseAddress?.assumingMemoryBound(to: CChar.self) else { return false }
            return gethostname(p, 255) == 0
        }
        guard ok else { return "-" }
        let h = String(decoding: buf.prefix { $0 != 0 }, as: UTF8.self)
        return h.isEmpty ? "-" : h
    }

    public static func message(line: [UInt8], event: String, warning: Bool) -> [UInt8] {
        let pri = facilityAuthpriv * 8 + (warning ? 4 : 6)
        let msgid = event.isEmpty ? "-" : String(event.prefix(32))
        let header = "<\(pri)>1 \(AuditEncoding.timestamp()) \(hostname()) \(appName) \(getpid()) \(msgid) - "
        return Array(header.utf8) + line
    }

    public static func send(line: [UInt8], event: String, warning: Bool, socketPath: String) throws {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw AuditError("syslog: socket() failed (\(AuditLog.errnoText()))") }
        defer { close(fd) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard pathBytes.count < capacity else { throw AuditError("syslog: socket path too long: \(socketPath)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let msg = message(line: line, event: event, warning: warning)
        let sent = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                msg.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, sa, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
        guard sent == msg.count else {
            throw AuditError("syslog: send to \(socketPath) failed (\(AuditLog.errnoText()))")
        }
    }
}
