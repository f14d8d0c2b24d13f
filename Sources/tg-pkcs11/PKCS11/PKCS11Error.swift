// Errors of the PKCS#11 client layer. Every CK_RV other than CKR_OK becomes a PKCS11Error naming the
// function and the CKR_ constant ("C_Login failed: CKR_PIN_INCORRECT"); nothing here ever carries a PIN
// or key byte.
import CP11Kit
import PKCS11Names

struct PKCS11Error: Error, CustomStringConvertible, Equatable {
    /// The C function that failed, e.g. "C_Login".
    let function: String
    let rv: CK_RV

    var description: String {
        let base = "\(function) failed: \(ReturnValueNames.name(of: rv))"
        return hint.map { "\(base) (\($0))" } ?? base
    }

    /// What an operator can do about the few return values that have an obvious remedy.
    var hint: String? {
        switch Int(rv) {
        case Int(CKR_USER_PIN_NOT_INITIALIZED): return "the token has no user PIN yet: set one with `tg-pkcs11 token init`"
        case Int(CKR_PIN_LOCKED): return "too many wrong PINs; the security officer must reset the user PIN"
        case Int(CKR_TOKEN_NOT_RECOGNIZED), Int(CKR_TOKEN_NOT_PRESENT): return "see `tg-pkcs11 token list`"
        case Int(CKR_TEMPLATE_INCONSISTENT) where function == "C_GenerateKey" || function == "C_CreateObject":
            return "the module or the token's policy (e.g. a minimum N2HE security level) refuses these key attributes"
        case _ where function == "C_Initialize":
            return "the module refused to start; check its configuration ($TENSORGUARD_PKCS11_CONF) and its log message"
        case Int(CKR_MECHANISM_INVALID) where function == "C_GenerateKey" || function.hasSuffix("Init"):
            return "the module does not offer this mechanism; is --module a TensorGuard PKCS#11 module?"
        default: return nil
        }
    }
}

/// Failures that happen before or around PKCS#11 calls: loading the module, a missing entry point.
enum ModuleError: Error, CustomStringConvertible {
    case loadFailed(path: String, reason: String)
    case missingSymbol(path: String, symbol: String)
    case missingFunction(String)
    case unexpected(String)

    var description: String {
        switch self {
        case .loadFailed(let path, let reason):
            return "cannot load PKCS#11 module '\(path)': \(reason)"
        case .missingSymbol(let path, let symbol):
            return "'\(path)' is not a PKCS#11 module: it does not export \(symbol)"
        case .missingFunction(let name):
            return "the module's function list has no \(name) entry"
        case .unexpected(let what):
            return "unexpected answer from the module: \(what)"
        }
    }
}

/// Throws a PKCS11Error for anything but CKR_OK.
@inline(__always)
func check(_ function: String, _ rv: CK_RV) throws {
    if rv != CK_RV(CKR_OK) { throw PKCS11Error(function: function, rv: rv) }
}

/// The function pointer of an entry point, or a clear error when the module leaves it NULL.
@inline(__always)
func entry<F>(_ name: String, _ pointer: F?) throws -> F {
    guard let pointer else { throw ModuleError.missingFunction(name) }
    return pointer
}
