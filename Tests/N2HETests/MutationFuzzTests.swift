import XCTest
@testable import N2HE

/// ≥ 100,000 mutated ciphertexts and key files through the parsers, decryptors and key importers.
/// The assertion is that nothing traps, plus consistency: whatever the header parser accepts decrypts to
/// exactly k values, and whatever it rejects, decrypt rejects with the same error.
final class MutationFuzzTests: XCTestCase {
    struct Corpus {
        var ciphertexts: [(bytes: [UInt8], cipher: N2HECipher)] = []
        var keyFiles: [[UInt8]] = []
        var rawKeys: [[UInt8]] = []
    }

    func makeCorpus() throws -> Corpus {
        var corpus = Corpus()
        let sdkKey = try Fixtures.sdkKeyRaw()
        for c in try Fixtures.cases().cases where c.k <= 8 {
            let cipher = try N2HECipher(key: sdkKey, parameters: try N2HEParameters(n: 1024, modulusBits: c.modulus_bits))
            corpus.ciphertexts.append((try Fixtures.data(c.file), cipher))
        }
        // Fully deterministic corpus: keys, A, seeds and noise from a seeded generator.
        var rng = SplitMix64(state: 2026)
        func ternary(_ n: Int) throws -> N2HESecretKey {
            try makeKey((0..<n).map { _ in Int64(rng.next() % 3) - 1 })
        }
        for bits in [32, 48] {
            for n in [1, 5, 8] {
                let cipher = try N2HECipher(key: try ternary(n), parameters: try N2HEParameters(n: n, modulusBits: bits))
                for format in N2HECiphertextFormat.allCases {
                    for k in [1, 2, 7] {
                        let plaintext = littleEndianBytes((0..<k).map { Int64($0) })
                        let fixed = N2HECipher.FixedRandomness(
                            noise: (0..<k).map { _ in Int64(rng.next() % 5) - 2 },
                            matrix: (0..<k * n).map { _ in rng.next() },
                            seed: (0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
                        let ct = try plaintext.withUnsafeBytes {
                            try cipher.encryptToArray(plaintext: $0, format: format, threads: 1, fixed: fixed)
                        }
                        corpus.ciphertexts.append((ct, cipher))
                    }
                }
            }
        }
        corpus.keyFiles.append(try Fixtures.data("sdk-key-1.npy"))
        corpus.rawKeys.append(try Fixtures.data("sdk-key-1.bin"))
        for n in [1, 3, 16] {
            let key = try ternary(n)
            corpus.keyFiles.append(key.npyRepresentation())
            corpus.rawKeys.append(key.rawRepresentation())
        }
        return corpus
    }

    static let interestingWords: [UInt32] = [0, 1, 2, 3, 7, 8, 9, 1023, 1024, 1025, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF, 0x0001_0000, 0x0001_0001]

    func mutate(_ input: [UInt8], _ rng: inout SplitMix64, headerBias: Int) -> [UInt8] {
        var b = input
        let rounds = 1 + Int(rng.next() % 3)
        for _ in 0..<rounds {
            let choice = rng.next() % 10
            let position: Int = {
                guard !b.isEmpty else { return 0 }
                let limit = rng.next() % 2 == 0 ? min(b.count, headerBias) : b.count
                return Int(rng.next() % UInt64(limit))
            }()
            switch choice {
            case 0, 1, 2:   // bit flip
                if !b.isEmpty { b[position] ^= UInt8(1) << UInt8(rng.next() % 8) }
            case 3:         // random byte
                if !b.isEmpty { b[position] = UInt8(truncatingIfNeeded: rng.next()) }
            case 4:         // truncation
                b = Array(b.prefix(Int(rng.next() % UInt64(b.count + 1))))
            case 5:         // extension
                let extra = Int(rng.next() % 17)
                b += (0..<extra).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 6, 7:      // header word edit (k at 4, n at 8, or npy header length at 8)
                let offset = [4, 8, 8, 4][Int(rng.next() % 4)]
                let word = Self.interestingWords[Int(rng.next() % UInt64(Self.interestingWords.count))]
                    &+ UInt32(truncatingIfNeeded: Int64(rng.next() % 3) - 1)
                if b.count >= offset + 4 {
                    withUnsafeBytes(of: word.littleEndian) { for i in 0..<4 { b[offset + i] = $0[i] } }
                }
            case 8:         // flags / version byte
                let offset = rng.next() % 2 == 0 ? 12 : 6 + Int(rng.next() % 2)
                if b.count > offset { b[offset] = [0, 1, 2, 3, 4, 0x80, 0xFF][Int(rng.next() % 7)] }
            default:        // magic / token swap
                if b.count >= 4, b[0] == UInt8(ascii: "L") { b[3] = b[3] == UInt8(ascii: "1") ? UInt8(ascii: "2") : UInt8(ascii: "1") }
                else if b.count > 20 {
                    let start = 10 + Int(rng.next() % UInt64(min(b.count - 10, 120)))
                    let token = Array(["<i4", "True", "(3, 1)", "'", "{", "}", ",", ")", "9999999", "\n", "\u{00e9}"][Int(rng.next() % 11)].utf8)
                    for (i, t) in token.enumerated() where start + i < b.count { b[start + i] = t }
                }
            }
        }
        return b
    }

    func testMutatedInputsNeverTrap() throws {
        let corpus = try makeCorpus()
        var rng = SplitMix64(state: 0x5EED_2026)
        var accepted = 0, rejected = 0, keysAccepted = 0, keysRejected = 0
        let ciphertextRuns = 70_000, keyRuns = 32_000
        for i in 0..<ciphertextRuns {
            let (original, cipher) = corpus.ciphertexts[i % corpus.ciphertexts.count]
            let mutated = mutate(original, &rng, headerBias: 48)
            let parsed = Result { try N2HECiphertextInfo(parsing: mutated, expectedDimension: cipher.parameters.n) }
            let decrypted = Result { try cipher.decrypt(mutated) }
            switch (parsed, decrypted) {
            case (.success(let info), .success(let values)):
                accepted += 1
                XCTAssertEqual(info.byteCount, mutated.count)
                XCTAssertEqual(values.count, info.count)
                XCTAssertTrue(values.allSatisfy { $0 >= 0 && $0 < 1 << 16 })
            case (.failure(let e1), .failure(let e2)):
                rejected += 1
                XCTAssertEqual(e1 as? N2HEError, e2 as? N2HEError)
            default:
                XCTFail("parser and decrypt disagree on mutation \(i)")
            }
            if i % 7 == 0 {
                _ = try? N2HEHomomorphic.add(mutated, original, parameters: cipher.parameters)
            }
        }
        for i in 0..<keyRuns {
            let useNPY = i % 2 == 0
            let source = useNPY ? corpus.keyFiles[i / 2 % corpus.keyFiles.count] : corpus.rawKeys[i / 2 % corpus.rawKeys.count]
            let mutated = mutate(source, &rng, headerBias: useNPY ? 128 : 64)
            do {
                let key = useNPY ? try N2HESecretKey(npyFile: mutated) : try N2HESecretKey(rawRepresentation: mutated)
                keysAccepted += 1
                XCTAssertEqual(key.rawRepresentation().count, key.n * 8)
            } catch is N2HEError {
                keysRejected += 1
            }
        }
        XCTAssertEqual(accepted + rejected + keysAccepted + keysRejected, ciphertextRuns + keyRuns)
        XCTAssertGreaterThanOrEqual(ciphertextRuns + keyRuns, 100_000)
        XCTAssertGreaterThan(accepted, 1000, "mutations inside A/B keep ciphertexts valid")
        XCTAssertGreaterThan(rejected, 10_000)
        XCTAssertGreaterThan(keysAccepted, 100)
        XCTAssertGreaterThan(keysRejected, 10_000)
        print("fuzz: ciphertexts accepted \(accepted) rejected \(rejected); keys accepted \(keysAccepted) rejected \(keysRejected)")
    }
}
