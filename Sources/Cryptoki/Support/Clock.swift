#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum Clock {
    /// CK_TOKEN_INFO.utcTime: YYYYMMDDhhmmss00.
    static func utcTime() -> String {
        var t = time(nil)
        var tmv = tm()
        guard gmtime_r(&t, &tmv) != nil else { return "0000000000000000" }
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return pad(tmv.tm_year + 1900, 4) + pad(tmv.tm_mon + 1, 2) + pad(tmv.tm_mday, 2)
            + pad(tmv.tm_hour, 2) + pad(tmv.tm_min, 2) + pad(tmv.tm_sec, 2) + "00"
    }
}
