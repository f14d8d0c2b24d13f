import COpenSSL
import CN2HEKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Raw pointers shared read-only (input) or written at disjoint offsets (output) by row workers.
struct Pointers: @unchecked Sendable {
    let input: UnsafeRawPointer
    let output: UnsafeMutableRawPointer
}

struct ConstPointer<T>: @unchecked Sendable {
    let pointer: UnsafePointer<T>
}

struct MutablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
}

enum Parallel {
    /// Runs `body(thread, rows)` over `threads` contiguous slices of 0..<count (inline when threads == 1) and
    /// returns true if every slice returned true. Slice 0 runs on the caller; the others on threads created for
    /// this call and joined before it returns — no thread pool is left behind in the host process (a PKCS#11
    /// module must not keep threads a forking host does not know about). A slice whose thread cannot be created
    /// runs on the caller.
    static func rows(_ count: Int, threads: Int, _ body: (Int, Range<Int>) -> Bool) -> Bool {
        let t = max(1, min(threads, count))
        if t == 1 { return body(0, 0..<count) }
        let results = UnsafeMutablePointer<Bool>.allocate(capacity: t)
        results.initialize(repeating: false, count: t)
        defer { results.deallocate() }
        return withoutActuallyEscaping(body) { body in
            let slices = (0..<t).map { i in SliceJob(index: i, rows: count * i / t ..< count * (i + 1) / t, body: body,
                                                      result: results + i) }
            var started: [(pthread_t, Unmanaged<SliceJob>)] = []
            for job in slices.dropFirst() {
                let box = Unmanaged.passRetained(job)
                var thread = pthread_t()
                if pthread_create(&thread, nil, { raw in
                    guard let raw else { return nil }
                    Unmanaged<SliceJob>.fromOpaque(raw).takeUnretainedValue().run()
                    return nil
                }, box.toOpaque()) == 0 {
                    started.append((thread, box))
                } else {
                    box.release()
                    job.run()
                }
            }
            slices[0].run()
            for (thread, box) in started {
                pthread_join(thread, nil)
                box.release()
            }
            return (0..<t).allSatisfy { results[$0] }
        }
    }

    /// One slice of `rows`, handed to a thread.
    private final class SliceJob: @unchecked Sendable {
        let index: Int
        let rows: Range<Int>
        let body: (Int, Range<Int>) -> Bool
        let result: UnsafeMutablePointer<Bool>
        init(index: Int, rows: Range<Int>, body: @escaping (Int, Range<Int>) -> Bool, result: UnsafeMutablePointer<Bool>) {
            self.index = index
            self.rows = rows
            self.body = body
            self.result = result
        }
        func run() { result.pointee = body(index, rows) }
    }
}
