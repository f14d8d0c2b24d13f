import Foundation
import XCTest
@testable import N2HE

/// Throughput at n = 1024, k = 4096, one thread, against the numpy reference measured in the same run.
/// Runs only with N2HE_BENCH=1, meant for a release build:
///   N2HE_BENCH=1 swift test -c release -Xswiftc -enable-testing --scratch-path .build-n2he --filter N2HETests.BenchmarkTests
/// Optional: N2HE_BENCH_K (default 4096), N2HE_BENCH_THREADS (default 1), N2HE_BENCH_OUT (write the JSON there).
final class BenchmarkTests: XCTestCase {
    func best(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start))
        }
        return best
    }

    func testThroughputAgainstNumpy() throws {
        let env = ProcessInfo.processInfo.environment
        guard env["N2HE_BENCH"] == "1" else { throw XCTSkip("set N2HE_BENCH=1 (release build) to run benchmarks") }
        let k = Int(env["N2HE_BENCH_K"] ?? "") ?? 4096
        let threads = Int(env["N2HE_BENCH_THREADS"] ?? "") ?? 1
        let n = 1024
        let entries = Double(k * n)
        let key = try N2HESecretKey.generate(n: n)
        let messages = (0..<k).map { Int64($0 &* 7919 % 65536) }
        let plaintext = littleEndianBytes(messages)
        var results: [String: Any] = ["n": n, "k": k, "threads": threads]
        var summary: [String] = []
        for bits in [32, 48] {
            let cipher = try N2HECipher(key: key, parameters: try N2HEParameters(n: n, modulusBits: bits, noiseMilli: 500))
            for format in N2HECiphertextFormat.allCases {
                let size = try cipher.ciphertextByteCount(format: format, count: k)
                var ct = [UInt8](repeating: 0, count: size)   // pre-faulted, as a PKCS#11 caller's buffer
                var out = [UInt8](repeating: 0, count: 8 * k)
                let enc = try best(7) {
                    _ = try plaintext.withUnsafeBytes { p in try ct.withUnsafeMutableBytes { try cipher.encrypt(plaintext: p, format: format, into: $0, threads: threads) } }
                }
                let dec = try best(7) {
                    _ = try ct.withUnsafeBytes { c in try out.withUnsafeMutableBytes { try cipher.decrypt(ciphertext: c, into: $0, threads: threads) } }
                }
                XCTAssertEqual(try cipher.decrypt(ct), messages)
                let name = "\(format)_q\(bits)"
                results[name] = ["encrypt_ns_per_entry": enc / entries, "decrypt_ns_per_entry": dec / entries,
                                 "encrypt_samples_per_second": Double(k) / enc * 1e9, "decrypt_samples_per_second": Double(k) / dec * 1e9]
                summary.append(String(format: "%@: encrypt %.3f ns/entry (%.2f ms), decrypt %.3f ns/entry (%.2f ms)",
                                      name, enc / entries, enc / 1e6, dec / entries, dec / 1e6))
            }
            // Raw PCG64 expansion (interleaved chains), per 64-bit output and per entry.
            let outputs = bits == 32 ? k * n / 2 : k * n
            let buffer = UnsafeMutablePointer<UInt64>.allocate(capacity: 1024)
            defer { buffer.deallocate() }
            let generator = PCG64(seedBytesBigEndian: [UInt8](0..<32))
            var sink: UInt64 = 0
            let expand = best(5) {
                var filler = PCG64InterleavedFiller(generator: generator, startingAtOutput: 0)
                var done = 0
                while done < outputs { filler.fill(buffer, count: 1024); sink ^= buffer[1023]; done += 1024 }
            }
            XCTAssertNotEqual(sink, 1)   // keep the loop
            results["pcg64_expansion_q\(bits)"] = ["ns_per_entry": expand / entries, "ns_per_output64": expand / Double(outputs)]
            summary.append(String(format: "PCG64 expansion q=2^%d: %.3f ns/entry, %.3f ns per next64", bits, expand / entries, expand / Double(outputs)))
        }
        // Components: Skellam noise for k samples (SDK μ = 0.5 and default μ = 5.12), AES-256-CTR keystream.
        for milli in [500, 5120] {
            let sampler = SkellamNoise(mu: Double(milli) / 1000, scale: 1 << 16)
            let t = try best(7) { _ = try sampler.samples(k) }
            results["noise_mu\(milli)"] = ["ns_per_sample": t / Double(k), "ns_per_entry": t / entries]
            summary.append(String(format: "noise μ=%.2f: %.1f ns/sample (%.3f ns/entry)", Double(milli) / 1000, t / Double(k), t / entries))
        }
        let keystream = try AESCTRKeystream()
        let streamBuffer = UnsafeMutableRawPointer.allocate(byteCount: 4 * n, alignment: 64)
        defer { streamBuffer.deallocate() }
        let aes = best(5) { for _ in 0..<k { _ = keystream.fill(streamBuffer, count: 4 * n) } }
        results["aes_ctr_q32"] = ["ns_per_entry": aes / entries]
        summary.append(String(format: "AES-256-CTR keystream, 4 bytes/entry: %.3f ns/entry", aes / entries))
        // numpy reference, same machine, same run.
        let reference = try runReferenceTool(["bench", "--k", "\(k)", "--n", "\(n)", "--repeat", "5"])
        if let json = try JSONSerialization.jsonObject(with: reference) as? [String: Any] {
            results["numpy"] = json
            for name in ["lwe1", "lwe2"] {
                for op in ["encrypt", "decrypt"] {
                    guard let r = json["\(name)_\(op)"] as? [String: Any], let ns = r["ns_per_entry"] as? Double,
                          let ours = (results["\(name)_q32"] as? [String: Double])?["\(op)_ns_per_entry"] else { continue }
                    summary.append(String(format: "numpy %@ %@: %.3f ns/entry → speed-up %.1f×", name, op, ns, ns / ours))
                }
            }
        }
        print(summary.joined(separator: "\n"))
        if let path = env["N2HE_BENCH_OUT"] {
            try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: path))
        }
    }
}
