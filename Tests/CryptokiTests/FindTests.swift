import CP11Kit
import XCTest
@testable import Cryptoki

final class FindTests: XCTestCase {
    func testFindByLabelIdClass() throws {
        let env = try TestEnvironment()
        let m = try env.module()
        let s = try m.readySession()
        var tokenKeys: [CK_OBJECT_HANDLE] = []
        for i in 0..<20 {
            tokenKeys.append(try m.aesKey(s, token: true, extra: [textAttr(CKA_LABEL, "key-\(i)"), bytesAttr(CKA_ID, [UInt8(i)])]))
        }
        let sessionKey = try m.aesKey(s, extra: [textAttr(CKA_LABEL, "key-3")])
        let data = try m.createObject(s, template: [ulongAttr(CKA_CLASS, CKO_DATA), textAttr(CKA_LABEL, "key-3"), boolAttr(CKA_TOKEN, true)])

        XCTAssertEqual(Set(try m.find(s, [textAttr(CKA_LABEL, "key-3")])), Set([tokenKeys[3], sessionKey, data]))
        XCTAssertEqual(try m.find(s, [textAttr(CKA_LABEL, "key-3"), ulongAttr(CKA_CLASS, CKO_SECRET_KEY), boolAttr(CKA_TOKEN, true)]),
                       [tokenKeys[3]])
        XCTAssertEqual(try m.find(s, [textAttr(CKA_LABEL, "key-3"), boolAttr(CKA_TOKEN, false)]), [sessionKey])
        XCTAssertEqual(try m.find(s, [bytesAttr(CKA_ID, [7])]), [tokenKeys[7]])
        XCTAssertEqual(try m.find(s, [ulongAttr(CKA_CLASS, CKO_DATA)]), [data])
        XCTAssertEqual(try m.find(s, [ulongAttr(CKA_CLASS, CKO_SECRET_KEY), boolAttr(CKA_TOKEN, true)]), tokenKeys)
        XCTAssertEqual(try m.find(s, [textAttr(CKA_LABEL, "nothing")]), [])
        // A CK_BBOOL given as 0xFF still matches; a malformed value matches nothing.
        XCTAssertEqual(try m.find(s, [bytesAttr(CKA_TOKEN, [0xFF]), bytesAttr(CKA_ID, [2])]), [tokenKeys[2]])
        XCTAssertEqual(try m.find(s, [bytesAttr(CKA_CLASS, [4])]), [])
        // Stable handles: the same object is found under the same handle.
        XCTAssertEqual(try m.find(s, [bytesAttr(CKA_ID, [7])]), [tokenKeys[7]])
        XCTAssertEqual(try m.find(s, []).count, 22)

        // Private objects are invisible without the user login.
        try m.logout(s)
        XCTAssertEqual(try m.find(s, [textAttr(CKA_LABEL, "key-3")]), [data])
    }
}
