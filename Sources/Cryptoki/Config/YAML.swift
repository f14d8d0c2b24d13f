// The configuration's YAML, read with Debian's libyaml (CYAML) into a small node tree. Only what a
// configuration needs: mappings (block and flow), lists, scalars with their style, comments, anchors/aliases.
// Accessors follow what the configuration code used before (Yams 5 `Node`): `string` is the text of any
// scalar, `int` only reads plain scalars (YAML 1.1 forms: sign, 0x/0o/0b/0 prefixes, `_`, sexagesimal), `bool`
// reads true/false/yes/no/on/off in any case and any style.
import CYAML

struct YAMLNode: Sendable {
    enum Kind: Sendable {
        case scalar(String, plain: Bool)
        case sequence([YAMLNode])
        case mapping([(YAMLNode, YAMLNode)])
    }
    var kind: Kind
    /// 1-based line of the node's start in the file, for messages.
    var line: Int
    /// Nodes below and including this one (aliases count their target's size again).
    var size: Int

    struct Scalar: Sendable { var string: String; var plain: Bool }

    var scalar: Scalar? {
        if case .scalar(let s, let plain) = kind { return Scalar(string: s, plain: plain) }
        return nil
    }
    var sequence: [YAMLNode]? {
        if case .sequence(let items) = kind { return items }
        return nil
    }
    var mapping: [(YAMLNode, YAMLNode)]? {
        if case .mapping(let pairs) = kind { return pairs }
        return nil
    }
    var string: String? { scalar?.string }

    var bool: Bool? {
        switch scalar?.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }

    var int: Int? {
        guard let s = scalar, s.plain else { return nil }
        let text = s.string.filter { $0 != "_" }
        if text == "0" { return 0 }
        let negative = text.hasPrefix("-")
        let hasSign = negative || text.hasPrefix("+")
        let sign = negative ? "-" : ""
        let body = text.dropFirst(hasSign ? 1 : 0)
        for (prefix, radix) in [("0x", 16), ("0b", 2), ("0o", 8), ("0", 8)] where body.hasPrefix(prefix) {
            return Int(sign + body.dropFirst(prefix.count), radix: radix)
        }
        if body.contains(":") {
            var value = 0
            for part in body.split(separator: ":", omittingEmptySubsequences: false) {
                guard let d = Int(part, radix: 10), d >= 0 else { return nil }
                let (m, o1) = value.multipliedReportingOverflow(by: 60)
                let (a, o2) = m.addingReportingOverflow(d)
                guard !o1, !o2 else { return nil }
                value = a
            }
            return negative ? -value : value
        }
        return Int(text, radix: 10)
    }
}

struct YAMLError: Error, CustomStringConvertible {
    var line: Int
    var column: Int?
    var message: String
    var description: String {
        "line \(line)" + (column.map { ", column \($0)" } ?? "") + ": " + message
    }
}

enum YAML {
    static let maximumDepth = 128
    static let maximumNodes = 100_000

    /// The single document of `text`; nil when there is none (empty file, comments only).
    static func compose(_ text: String) throws -> YAMLNode? {
        var bytes = Array(text.utf8)
        if bytes.isEmpty { return nil }
        return try bytes.withUnsafeMutableBufferPointer { buf -> YAMLNode? in
            var parser = yaml_parser_t()
            guard yaml_parser_initialize(&parser) == 1 else {
                throw YAMLError(line: 1, column: nil, message: "cannot initialise the YAML parser (out of memory)")
            }
            defer { yaml_parser_delete(&parser) }
            guard let base = buf.baseAddress else { return nil }
            yaml_parser_set_input_string(&parser, base, buf.count)
            return try withUnsafeMutablePointer(to: &parser) { p in
                var composer = Composer(parser: p)
                return try composer.stream()
            }
        }
    }

    /// Pulls libyaml's events and builds nodes. Each event is deleted right after it is read.
    struct Composer {
        var parser: UnsafeMutablePointer<yaml_parser_t>
        var anchors: [String: YAMLNode] = [:]
        var nodes = 0

        enum Event {
            case streamStart, streamEnd, documentStart, documentEnd
            case alias(String)
            case scalar(String, plain: Bool, anchor: String?)
            case sequenceStart(anchor: String?), sequenceEnd
            case mappingStart(anchor: String?), mappingEnd
        }

        static func text(_ p: UnsafeMutablePointer<yaml_char_t>?, _ length: Int? = nil) -> String? {
            guard let p else { return nil }
            if let length {
                return String(decoding: UnsafeBufferPointer(start: p, count: length), as: UTF8.self)
            }
            return String(cString: p)
        }

        func syntaxError() -> YAMLError {
            let pr = parser.pointee
            var message = pr.problem.map { String(cString: $0) } ?? "invalid YAML"
            if let ctx = pr.context.map({ String(cString: $0) }) {
                message += " (\(ctx) at line \(pr.context_mark.line + 1))"
            }
            return YAMLError(line: Int(pr.problem_mark.line) + 1, column: Int(pr.problem_mark.column) + 1,
                             message: message)
        }

        mutating func next() throws -> (Event, line: Int) {
            var event = yaml_event_t()
            guard yaml_parser_parse(parser, &event) == 1 else { throw syntaxError() }
            defer { yaml_event_delete(&event) }
            let line = Int(event.start_mark.line) + 1
            let e: Event
            switch event.type {
            case YAML_STREAM_START_EVENT: e = .streamStart
            case YAML_STREAM_END_EVENT: e = .streamEnd
            case YAML_DOCUMENT_START_EVENT: e = .documentStart
            case YAML_DOCUMENT_END_EVENT: e = .documentEnd
            case YAML_ALIAS_EVENT: e = .alias(Self.text(event.data.alias.anchor) ?? "")
            case YAML_SCALAR_EVENT:
                let s = event.data.scalar
                e = .scalar(Self.text(s.value, Int(s.length)) ?? "", plain: s.style == YAML_PLAIN_SCALAR_STYLE,
                            anchor: Self.text(s.anchor))
            case YAML_SEQUENCE_START_EVENT: e = .sequenceStart(anchor: Self.text(event.data.sequence_start.anchor))
            case YAML_SEQUENCE_END_EVENT: e = .sequenceEnd
            case YAML_MAPPING_START_EVENT: e = .mappingStart(anchor: Self.text(event.data.mapping_start.anchor))
            case YAML_MAPPING_END_EVENT: e = .mappingEnd
            default: throw YAMLError(line: line, column: nil, message: "unexpected YAML event")
            }
            return (e, line)
        }

        mutating func stream() throws -> YAMLNode? {
            guard case .streamStart = try next().0 else { throw YAMLError(line: 1, column: nil, message: "no YAML stream") }
            var root: YAMLNode?
            var documents = 0
            while true {
                let (e, line) = try next()
                switch e {
                case .streamEnd:
                    return root
                case .documentStart:
                    documents += 1
                    guard documents == 1 else {
                        throw YAMLError(line: line, column: nil, message: "more than one YAML document (one is expected)")
                    }
                    let (first, l) = try next()
                    root = try node(first, line: l, depth: 0)
                    guard case .documentEnd = try next().0 else {
                        throw YAMLError(line: line, column: nil, message: "document not ended")
                    }
                default:
                    throw YAMLError(line: line, column: nil, message: "unexpected YAML event")
                }
            }
        }

        mutating func count(_ n: Int, line: Int) throws {
            nodes += n
            guard nodes <= YAML.maximumNodes else {
                throw YAMLError(line: line, column: nil, message: "more than \(YAML.maximumNodes) nodes (aliases included)")
            }
        }

        mutating func node(_ e: Event, line: Int, depth: Int) throws -> YAMLNode {
            guard depth <= YAML.maximumDepth else {
                throw YAMLError(line: line, column: nil, message: "nested deeper than \(YAML.maximumDepth) levels")
            }
            switch e {
            case .alias(let name):
                guard let target = anchors[name] else {
                    throw YAMLError(line: line, column: nil, message: "unknown alias '*\(name)'")
                }
                try count(target.size, line: line)
                return target
            case .scalar(let s, let plain, let anchor):
                try count(1, line: line)
                let n = YAMLNode(kind: .scalar(s, plain: plain), line: line, size: 1)
                if let anchor { anchors[anchor] = n }
                return n
            case .sequenceStart(let anchor):
                try count(1, line: line)
                var items: [YAMLNode] = []
                var size = 1
                while true {
                    let (item, l) = try next()
                    if case .sequenceEnd = item { break }
                    let child = try node(item, line: l, depth: depth + 1)
                    size += child.size
                    items.append(child)
                }
                let n = YAMLNode(kind: .sequence(items), line: line, size: size)
                if let anchor { anchors[anchor] = n }
                return n
            case .mappingStart(let anchor):
                try count(1, line: line)
                var pairs: [(YAMLNode, YAMLNode)] = []
                var size = 1
                while true {
                    let (k, kl) = try next()
                    if case .mappingEnd = k { break }
                    let key = try node(k, line: kl, depth: depth + 1)
                    let (v, vl) = try next()
                    let value = try node(v, line: vl, depth: depth + 1)
                    size += key.size + value.size
                    pairs.append((key, value))
                }
                let n = YAMLNode(kind: .mapping(pairs), line: line, size: size)
                if let anchor { anchors[anchor] = n }
                return n
            default:
                throw YAMLError(line: line, column: nil, message: "unexpected YAML event")
            }
        }
    }
}
