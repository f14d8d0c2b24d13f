import XCTest
@testable import Cryptoki

/// The configuration's YAML reader (libyaml underneath): the node tree, the accessors' Yams-5 semantics, where
/// syntax errors point, and the limits that keep a hostile file from exhausting the host.
final class YAMLTests: XCTestCase {
    private func compose(_ text: String) throws -> YAMLNode {
        guard let node = try YAML.compose(text) else {
            XCTFail("no document in \(text)")
            throw YAMLError(line: 0, column: nil, message: "no document")
        }
        return node
    }

    private func value(_ node: YAMLNode, _ key: String) -> YAMLNode? {
        node.mapping?.first(where: { $0.0.string == key })?.1
    }

    private func error(_ text: String) -> YAMLError? {
        do {
            _ = try YAML.compose(text)
            return nil
        } catch let e as YAMLError {
            return e
        } catch {
            XCTFail("unexpected error type \(error)")
            return nil
        }
    }

    func testBlockAndFlowMappingsSequencesAndLines() throws {
        let root = try compose("""
            # comment
            log: {level: debug, file: /tmp/x.log}
            tokens:
              - name: a
                store: "/srv/a"
              - {name: b, store: '/srv/b'}
            """)
        XCTAssertEqual(value(root, "log").flatMap { value($0, "level") }?.string, "debug")
        let tokens = try XCTUnwrap(value(root, "tokens")?.sequence)
        XCTAssertEqual(tokens.count, 2)
        XCTAssertEqual(value(tokens[0], "store")?.string, "/srv/a")
        XCTAssertEqual(value(tokens[1], "name")?.string, "b")
        XCTAssertEqual(tokens[0].line, 4)
        XCTAssertEqual(tokens[1].line, 6)
        XCTAssertNil(try YAML.compose(""))
        XCTAssertNil(try YAML.compose("# only a comment\n"))
    }

    func testIntegersFollowYAML11PlainScalarsOnly() throws {
        let root = try compose("""
            a: 42
            b: -0x1F
            c: 0o17
            d: 017
            e: 0b101
            f: 1_000
            g: 1:30
            h: "42"
            i: 4.2
            j: 99999999999999999999999
            """)
        let ints = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"].map { value(root, $0)?.int }
        XCTAssertEqual(ints, [42, -31, 15, 15, 5, 1000, 90, nil, nil, nil])
        XCTAssertEqual(value(root, "h")?.string, "42", "a quoted scalar keeps its text")
    }

    func testBooleansInAnyCaseAndStyle() throws {
        let root = try compose("a: yes\nb: Off\nc: 'TRUE'\nd: maybe\n")
        XCTAssertEqual(["a", "b", "c", "d"].map { value(root, $0)?.bool }, [true, false, true, nil])
    }

    func testSyntaxErrorsNameLineAndColumn() throws {
        let e = try XCTUnwrap(error("tokens:\n  - name: a\n    store: [unclosed\nlog: x\n"))
        XCTAssertGreaterThanOrEqual(e.line, 3)
        XCTAssertNotNil(e.column)
        XCTAssertTrue(e.description.hasPrefix("line \(e.line), column "), e.description)

        let tab = try XCTUnwrap(error("a:\n\tb: 1\n"))
        XCTAssertEqual(tab.line, 2, tab.description)
        XCTAssertEqual(tab.column, 1, tab.description)
    }

    func testAliasesResolveAndUnknownAliasesAreRefused() throws {
        let root = try compose("base: &b {level: info}\nlog: *b\n")
        XCTAssertEqual(value(root, "log").flatMap { value($0, "level") }?.string, "info")
        let e = try XCTUnwrap(error("log: *nowhere\n"))
        XCTAssertTrue(e.description.hasSuffix("unknown alias '*nowhere'"), e.description)
        XCTAssertEqual(e.line, 1)
    }

    func testOneDocumentOnly() throws {
        let e = try XCTUnwrap(error("a: 1\n---\nb: 2\n"))
        XCTAssertTrue(e.message.hasPrefix("more than one YAML document"), e.description)
        XCTAssertEqual(e.line, 2)
    }

    func testNestingDeeperThanTheLimitIsRefused() throws {
        let ok = String(repeating: "[", count: YAML.maximumDepth + 1) + String(repeating: "]", count: YAML.maximumDepth + 1)
        XCTAssertNoThrow(try YAML.compose(ok))
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let e = try XCTUnwrap(error(deep))
        XCTAssertTrue(e.message.hasPrefix("nested deeper than \(YAML.maximumDepth) levels"), e.description)
    }

    /// "Billion laughs": each level doubles the tree through aliases. The reader counts what aliases expand to and
    /// stops at the node limit instead of building 2^40 nodes.
    func testAliasExpansionIsBounded() throws {
        var text = "l0: &l0 [x, x]\n"
        for level in 1...40 { text += "l\(level): &l\(level) [*l\(level - 1), *l\(level - 1)]\n" }
        let e = try XCTUnwrap(error(text))
        XCTAssertTrue(e.message.hasPrefix("more than \(YAML.maximumNodes) nodes"), e.description)
        XCTAssertGreaterThan(e.line, 10, "stopped where the expansion crossed the limit")
    }

    func testInvalidUTF8IsASyntaxErrorNotACrash() throws {
        let bytes: [UInt8] = Array("a: ".utf8) + [0xC3, 0x28] + Array("\n".utf8)
        let text = String(decoding: bytes, as: UTF8.self)  // U+FFFD in place of the bad byte: valid UTF-8 again
        XCTAssertNoThrow(try YAML.compose(text))
        let nul = try XCTUnwrap(error("a: \u{0}\n"))
        XCTAssertEqual(nul.line, 1, nul.description)
    }
}
