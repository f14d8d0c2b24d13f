// Helpers of the gcp-kms / azure-keyvault tests; the fake servers are TestSupport's FakeCloudServer.
import CryptoCore
import Foundation
@testable import KeyWrap
import XCTest

/// Runs `body`, returning its error (nil if none) and the wall time it took.
func cloudTimed(_ body: () throws -> Void) -> (KeyWrapError?, Duration) {
    let clock = ContinuousClock()
    var error: KeyWrapError? = nil
    let elapsed = clock.measure {
        do { try body() } catch let e as KeyWrapError { error = e } catch { XCTFail("unexpected error type: \(error)") }
    }
    return (error, elapsed)
}

let cloudContext = WrapContext(tokenSerial: "0123456789abcdef", tokenUUID: "7f2c1e0d9b8a4c3e8f1a2b3c4d5e6f70")
let cloudOtherContext = WrapContext(tokenSerial: "0123456789abcdef", tokenUUID: "00000000000000000000000000000001")
