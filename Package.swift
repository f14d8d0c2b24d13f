// swift-tools-version:6.0
// TensorGuard PKCS#11 — see ../shared/DESIGN.md §1 for the layout. Each layer only knows the one below.
import Foundation
import PackageDescription

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path

let package = Package(
    name: "TensorGuardPKCS11",
    platforms: [.macOS(.v15)],
    products: [
        // The module hosts load: libtensorguard-pkcs11.so. Swift runtime linked statically, only C_* exported,
        // NODELETE (hosts dlclose modules; the Swift runtime cannot be unloaded).
        .library(name: "tensorguard-pkcs11", type: .dynamic, targets: ["TensorGuardPKCS11"]),
        .executable(name: "tg-pkcs11", targets: ["tg-pkcs11"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries (Debian: libp11-kit-dev for the header only, libssl-dev, libsqlite3-dev).
        .systemLibrary(name: "CP11Kit", providers: [.apt(["libp11-kit-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // libyaml for the configuration file (Debian: libyaml-dev); replaces Yams, which needs Foundation.
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),

        // Thin Swift wrappers over OpenSSL libcrypto: random, AES modes, key wrap, digests, HMAC, KDFs, zeroisation.
        .target(name: "CryptoCore", dependencies: ["COpenSSL", "CSecureMemory"]),
        // Locked (mlock), never-dumped, wiped-on-fork memory for secrets kept across calls (the token key cache).
        .target(name: "CSecureMemory", dependencies: ["COpenSSL"]),
        // AVX-512 kernels for N2HE (header-only, selected at run time; the Swift scalar code runs elsewhere).
        .target(name: "CN2HEKernels"),
        // The N2HE scheme of the TensorGuard SDK: parameters, keys, LWE1/LWE2, PCG64 expansion. Knows no PKCS#11.
        .target(name: "N2HE", dependencies: ["COpenSSL", "CryptoCore", "CN2HEKernels"]),
        // The one JSON of the module's layers, in plain Swift: a strict bounded reader whose secret members land
        // in SecretBytes, and a deterministic writer (cloud REST bodies, OAuth, audit records).
        .target(name: "JSON", dependencies: ["CryptoCore"]),
        // libcurl for the cloud backends' HTTP layer, loaded with dlopen on first use (header from Debian's
        // libcurl4-openssl-dev; not linked: its ~30 libraries would load into every host, docs/footprint.md).
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("dl")]),
        // libpq for the PostgreSQL token store, loaded with dlopen on first use like libcurl (header from Debian's
        // libpq-dev, <postgresql/libpq-fe.h>; not linked: its 22 libraries would load into every host,
        // docs/plans/postgresql-store.md §1.4). Only the asynchronous calls, so that every wait has a deadline.
        .target(name: "CLibPQ", linkerSettings: [.linkedLibrary("dl")]),
        // CK_RV names for messages (the CLI's and the PKCS#11 backend's), from numeric values.
        .target(name: "PKCS11Names", dependencies: ["CP11Kit"]),
        // Key-wrapping backends (DESIGN §5): the protocol and its implementations. Never sees objects.
        .target(name: "KeyWrap", dependencies: ["CryptoCore", "JSON", "CP11Kit", "CCurl", "COpenSSL", "PKCS11Names"]),
        // Persistence and at-rest sealing (DESIGN §4): SQLite per token, root key envelope, sealed attributes.
        .target(name: "TokenStore", dependencies: ["CryptoCore", "CSQLite", "KeyWrap", "CLibPQ"]),
        // The tamper-evident audit log (docs/audit.md): record encoding, hash chain, appender, verifier, syslog.
        // Knows no PKCS#11.
        .target(name: "Audit", dependencies: ["CryptoCore", "JSON"]),
        // PKCS#11 semantics in Swift types: slots, tokens, sessions, login, objects, policy, mechanisms.
        .target(name: "Cryptoki", dependencies: [
            "CP11Kit", "CryptoCore", "N2HE", "KeyWrap", "TokenStore", "Audit", "CYAML",
        ]),
        // C function tables (2.40 and 3.0), C_GetFunctionList, C_GetInterfaceList, C_GetInterface.
        .target(name: "CPKCS11", dependencies: ["CP11Kit"]),
        // The C ABI: @_cdecl C_* shims only.
        .target(
            name: "TensorGuardPKCS11",
            dependencies: ["CPKCS11", "CP11Kit", "Cryptoki", "CryptoCore"],
            exclude: ["exports.map"],
            linkerSettings: [.unsafeFlags([
                "-static-stdlib",
                // No Foundation in the module's closure (docs/footprint.md): only the Swift runtime, the stdlib
                // and Synchronization are linked statically. Any unresolved symbol is a link error.
                "-Xlinker", "--no-undefined",
                // lld: symbols the version script makes local stay out of .dynsym (gold kept ~47 of them there,
                // Swift metadata and libdispatch's __dispatch_tsd, visible to `nm -D` though unbindable).
                "-use-ld=lld",
                "-Xlinker", "--exclude-libs=ALL",
                "-Xlinker", "-z", "-Xlinker", "nodelete",
                // DT_RELR (glibc >= 2.36, Debian 12): ~27k relative relocations packed into a few KiB instead of
                // 640 KB of .rela.dyn read and applied at every dlopen (docs/footprint.md).
                "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                "-Xlinker", "--version-script=\(root)/Sources/TensorGuardPKCS11/exports.map",
            ])]
        ),
        // Operator CLI.
        // Cryptoki/KeyWrap/TokenStore for what PKCS#11 cannot express: backend, rotate-kek, backup/restore, token
        // show/delete, doctor, audit (config discovery, backends, the store); see docs/architecture.md.
        // Swift runtime and Foundation linked statically, as in the module, so that an installed tg-pkcs11 (make
        // install, make deb) runs on a host without the toolchain: only Debian's libraries stay NEEDED.
        .executableTarget(
            name: "tg-pkcs11",
            dependencies: [
                "CP11Kit", "N2HE", "CryptoCore", "KeyWrap", "TokenStore", "Cryptoki", "Audit", "PKCS11Names",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            linkerSettings: [.unsafeFlags([
                "-static-stdlib",
                // Static Foundation's own dependencies are not autolinked on Linux (see the module above).
                "-Xlinker", "--start-group",
                "-Xlinker", "-lFoundation", "-Xlinker", "-lFoundationEssentials",
                "-Xlinker", "-lFoundationInternationalization", "-Xlinker", "-lCoreFoundation",
                "-Xlinker", "-l_FoundationCShims", "-Xlinker", "-l_FoundationCollections", "-Xlinker", "-l_FoundationICU",
                "-Xlinker", "--end-group",
            ])]
        ),

        .testTarget(name: "CryptoCoreTests", dependencies: ["CryptoCore"]),
        .testTarget(name: "N2HETests", dependencies: ["N2HE", "CN2HEKernels"]),
        .testTarget(name: "TokenStoreTests", dependencies: ["TokenStore", "KeyWrap", "CryptoCore", "TestSupport"]),
        // Chain, tamper cases, partial lines, checkpoints; concurrent writers re-run this test binary as children.
        .testTarget(name: "AuditTests", dependencies: ["Audit", "CryptoCore", "TestSupport"]),
        // The Python test servers (Tests/servers) as child processes, and an audit log editor (AuditForger); used by
        // test targets only, no product.
        .target(name: "TestSupport", dependencies: ["KeyWrap", "Audit"]),
        // `make bench`: the token store on SQLite and on PostgreSQL through the same code (not installed).
        .executableTarget(name: "tg-store-bench", dependencies: ["TokenStore", "KeyWrap", "CryptoCore", "TestSupport"]),

        .testTarget(name: "KeyWrapTests", dependencies: ["KeyWrap", "CryptoCore", "TokenStore", "TestSupport"]),
        .testTarget(name: "CryptokiTests", dependencies: ["Cryptoki", "CP11Kit", "Audit", "CryptoCore", "N2HE", "TokenStore", "KeyWrap",
                                                         "TestSupport"],
                    exclude: ["Fixtures"]),
        // Tokens on the cloud backends through the Module API, against moto / the fault proxy / the fakes.
        .testTarget(name: "CloudTokenTests", dependencies: ["Cryptoki", "CP11Kit", "CryptoCore", "JSON", "KeyWrap", "TestSupport"]),
        // Runs the built tg-pkcs11 (`swift build` first); N2HE checks its ciphertexts against the SDK key file.
        .testTarget(name: "CLITests", dependencies: ["N2HE", "Audit", "TestSupport"]),
    ]
)
