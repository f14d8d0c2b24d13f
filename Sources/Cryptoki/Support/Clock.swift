#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CryptoCore

enum Clock {
    /// CK_TOKEN_INFO.utcTime: YYYYMMDDhhmmss00.
    static func utcTime() -> String {
        var t = time(nil)
        var tmv = tm()
        guard gmtime_r(&t, &tmv) != nil else { return "0000000000000000" }
        return (tmv.tm_year + 1900).zeroPadded(4) + (tmv.tm_mon + 1).zeroPadded(2) + tmv.tm_mday.zeroPadded(2)
            + tmv.tm_hour.zeroPadded(2) + tmv.tm_min.zeroPadded(2) + tmv.tm_sec.zeroPadded(2) + "00"
    }
}
