import CP11Kit
import Foundation
import XCTest
@testable import Cryptoki

/// Mutated SDK ciphertexts through C_Decrypt (Module.decryptInit/decrypt) and mutated raw keys through the
/// C_CreateObject importer: every answer is a result or its documented CK_RV, never a crash (issue #3).
final class N2HEMutationFuzzTests: XCTestCase {
    /// SplitMix64: deterministic, so a failure names a reproducible iteration.
    struct Mutator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }

        /// Bit flips, header-field rewrites (magic, k, n, flags), truncation, extension, byte runs.
        mutating func mutate(_ input: [UInt8]) -> [UInt8] {
            var b = input
            switch below(7) {
            case 0:
                for _ in 0...below(4) where !b.isEmpty { b[below(b.count)] ^= UInt8(1 << below(8)) }
            case 1 where b.count >= 13:
                let field = [0, 4, 8, 12][below(4)]
                let width = field == 12 ? 1 : 4
                let value = [0, 1, 2, 0xFF, 0xFFFF_FFFF, 0x8000_0000, UInt64(below(1 << 20))][below(7)]
                for i in 0..<width { b[field + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
            case 2:
                b.removeLast(below(b.count + 1))
            case 3:
                b += (0..<(1 + below(64))).map { _ in UInt8(truncatingIfNeeded: next()) }
            case 4 where !b.isEmpty:
                let start = below(b.count)
                for i in start..<min(b.count, start + 1 + below(32)) { b[i] = UInt8(truncatingIfNeeded: next()) }
            case 5 where b.count >= 4:
                b[0..<4] = [[0x4C, 0x57, 0x45, 0x31], [0x4C, 0x57, 0x45, 0x32], [0, 0, 0, 0]][below(3)][...]
            default:
                b = Array(b.prefix(13 + below(64)))
            }
            return b
        }
    }

    func testMutatedCiphertextsAndKeysThroughTheModule() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: interopDirectory + "/sdk-key-1.bin")))
        func importKey(_ value: [UInt8], modulusBits: CK_ULONG) throws -> CK_OBJECT_HANDLE {
            try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), ulongAttr(CKA_KEY_TYPE, CK.keyN2HE),
                                             bytesAttr(CKA_VALUE, value), ulongAttr(CK.attrN2HEModulusBits, modulusBits)])
        }
        let keys: [CK_ULONG: CK_OBJECT_HANDLE] = [32: try importKey(raw, modulusBits: 32), 48: try importKey(raw, modulusBits: 48)]
        let seeds = ["lwe1-q32-k1", "lwe1-q32-k8", "lwe2-q32-k1", "lwe2-q32-k8",
                     "lwe1-q48-k1", "lwe1-q48-k8", "lwe2-q48-k1", "lwe2-q48-k8"]
        let fixtures: [(ct: [UInt8], mechanism: Mechanism, key: CK_OBJECT_HANDLE)] = try seeds.map { name in
            let ct = try [UInt8](Data(contentsOf: URL(fileURLWithPath: interopDirectory + "/sdk-key-1-\(name).ct")))
            let mechanism = Mechanism(type: name.hasPrefix("lwe1") ? CK.mechN2HELWE1 : CK.mechN2HELWE2)
            return (ct, mechanism, try XCTUnwrap(keys[name.contains("q48") ? 48 : 32]))
        }
        let decryptAnswers: Set<CK_RV> = [CKR_ENCRYPTED_DATA_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE]
        var rng = Mutator(state: 0x5447_4E32_4845_0001)
        var output = [UInt8](repeating: 0, count: 8 * 256 + 64)
        var decrypted = 0, refused = 0
        for iteration in 0..<100_000 {
            let f = fixtures[rng.below(fixtures.count)]
            let mutated = rng.mutate(f.ct)
            try m.decryptInit(s, mechanism: f.mechanism, key: f.key)
            do {
                let result = try mutated.withUnsafeBytes { input in
                    try output.withUnsafeMutableBytes { try m.decrypt(s, input: input, output: .buffer($0)) }
                }
                switch result {
                case .written(let n):
                    XCTAssertEqual(n % 8, 0, "iteration \(iteration)")
                    decrypted += 1
                case .bufferTooSmall, .lengthRequired:
                    // A mutated k that still parses can need more room than any fixture: end the operation.
                    try m.cancelOperations(s, flags: CK_FLAGS(CKF_DECRYPT))
                    refused += 1
                }
            } catch let e as CKRError {
                guard decryptAnswers.contains(e.rv) else { return XCTFail("iteration \(iteration): \(e)") }
                refused += 1
            }
        }
        XCTAssertGreaterThan(decrypted, 1000, "mutations that keep a valid layout still decrypt")
        XCTAssertGreaterThan(refused, 50_000)

        var imported = 0
        for iteration in 0..<20_000 {
            let value = rng.mutate(raw)
            do {
                let h = try importKey(value, modulusBits: 32)
                try m.destroyObject(s, h)
                imported += 1
            } catch let e as CKRError {
                guard [CKR_ATTRIBUTE_VALUE_INVALID, CKR_TEMPLATE_INCONSISTENT].contains(e.rv) else {
                    return XCTFail("key import iteration \(iteration): \(e)")
                }
            }
        }
        XCTAssertGreaterThan(imported, 0, "an unchanged or still-ternary key imports")
    }
}
