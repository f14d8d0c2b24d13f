// What an editor of an audit file can do without any key (the forgeries of issue 13 that `audit verify` must catch).
import Audit
import Foundation

/// Rewrites a log as an editor of the file can: renumbers seq, recomputes every prev and the head sidecar.
public enum Forger {
    /// Also renumbers what refers to a seq (an outcome's `pending_seq`, a checkpoint's `prev_checkpoint`), as a
    /// careful editor would.
    public static func rechain(_ lines: [String]) -> (lines: [String], head: String) {
        var out: [String] = []
        var prev = AuditEncoding.zeroHash
        var seq = 0
        var renumbered: [Int64: Int] = [:]
        for line in lines {
            seq += 1
            var l = line
            if let obj = AuditEncoding.parse(Array(l.utf8)), let p = obj["prev"] as? String, let s = AuditEncoding.int(obj["seq"]) {
                renumbered[s] = seq
                l = l.replacingOccurrences(of: "\"prev\":\"\(p)\"", with: "\"prev\":\"\(prev)\"")
                l = l.replacingOccurrences(of: "\"seq\":\(s),", with: "\"seq\":\(seq),")
                for field in ["pending_seq", "prev_checkpoint"] {
                    if let old = AuditEncoding.int(obj[field]), let new = renumbered[old] {
                        l = l.replacingOccurrences(of: "\"\(field)\":\(old),", with: "\"\(field)\":\(new),")
                    }
                }
            }
            out.append(l)
            prev = AuditEncoding.hash(Array(l.utf8))
        }
        var head = #"{"hash":"\#(prev)","seq":\#(seq),"v":2}"#
        head += String(repeating: " ", count: AuditLog.headSize - 1 - head.utf8.count) + "\n"
        return (out, head)
    }

    public static func write(_ lines: [String], to file: String) throws {
        let (ls, head) = rechain(lines)
        try (ls.joined(separator: "\n") + "\n").write(toFile: file, atomically: false, encoding: .utf8)
        try head.write(toFile: AuditLog.headPath(for: file), atomically: false, encoding: .utf8)
    }
}
