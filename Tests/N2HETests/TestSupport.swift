import COpenSSL
import Foundation
import XCTest
@testable import N2HE

enum Fixtures {
    /// The repository root (/work/main), from this file's real path (symlinks resolved).
    static let repoRoot: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// repoRoot/../shared/interop, or $N2HE_INTEROP_DIR.
    static let interopDirectory: URL = {
        if let override = ProcessInfo.processInfo.environment["N2HE_INTEROP_DIR"] {
            return URL(fileURLWithPath: override)
        }
        return repoRoot.deletingLastPathComponent().appendingPathComponent("shared/interop")
    }()

    static func data(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
        let url = interopDirectory.appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            XCTFail("SDK fixture missing: \(url.path) (expected in repoRoot/../shared/interop)", file: file, line: line)
            throw CocoaError(.fileNoSuchFile)
        }
        return [UInt8](data)
    }

    struct Case: Decodable {
        let file: String
        let format: String
        let modulus_bits: Int
        let n: Int
        let plaintext_bits: Int
        let k: Int
        let plaintext: [Int64]
        let sha256: String
    }

    struct CaseFile: Decodable {
        let key: String
        let key_raw: String
        let cases: [Case]
    }

    static func cases() throws -> CaseFile {
        try JSONDecoder().decode(CaseFile.self, from: Data(try data("sdk-key-1.cases.json")))
    }

    static func sdkKeyNPY() throws -> N2HESecretKey { try N2HESecretKey(npyFile: try data("sdk-key-1.npy")) }
    static func sdkKeyRaw() throws -> N2HESecretKey { try N2HESecretKey(rawRepresentation: try data("sdk-key-1.bin")) }
}

func hex(_ bytes: some Sequence<UInt8>) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

func bytes(hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var it = hex.makeIterator()
    while let a = it.next(), let b = it.next() {
        out.append(UInt8(String([a, b]), radix: 16) ?? 0)
    }
    return out
}

/// SHA-256 through OpenSSL EVP.
func sha256(_ data: some ContiguousBytes) -> String {
    var digest = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    let ok = data.withUnsafeBytes { d in
        digest.withUnsafeMutableBufferPointer { out in
            EVP_Digest(d.baseAddress, d.count, out.baseAddress, &length, EVP_sha256(), nil)
        }
    }
    precondition(ok == 1 && length == 32, "EVP_Digest failed")
    return hex(digest)
}

func littleEndianBytes(_ values: [Int64]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}

func littleEndianBytes(_ values: [UInt64]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}

/// A deterministic generator for tests (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs `python3 tools/n2he_reference.py args…` and returns stdout; fails the test on a non-zero exit.
func runReferenceTool(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Data {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", Fixtures.repoRoot.appendingPathComponent("tools/n2he_reference.py").path] + arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    if process.terminationStatus != 0 {
        XCTFail("n2he_reference.py \(arguments.first ?? "") failed (\(process.terminationStatus)): "
                + String(decoding: stderr, as: UTF8.self), file: file, line: line)
        throw CocoaError(.executableLoad)
    }
    return stdout
}

func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("n2he-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func makeKey(_ entries: [Int64]) throws -> N2HESecretKey {
    try N2HESecretKey(rawRepresentation: littleEndianBytes(entries))
}

func assertThrows<T>(_ expected: N2HEError, file: StaticString = #filePath, line: UInt = #line,
                     _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected \(expected), got success", file: file, line: line)
    } catch let error as N2HEError {
        XCTAssertEqual(error, expected, file: file, line: line)
    } catch {
        XCTFail("expected \(expected), got \(error)", file: file, line: line)
    }
}
