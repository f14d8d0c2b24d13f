/// The PostgreSQL schema of a token (docs/plans/postgresql-store.md §1.2, §2.5). A new schema is created at the
/// current version directly: the tables and columns of SQLite's schema after all its steps (`Connection.schemaV1…`),
/// with `bytea` for BLOB, `bigint` for INTEGER and a collation that compares unique ids bytewise, plus
/// `token.change` (the change marker, `PostgresDriver`). Each later step n → n+1 is written for both dialects, so
/// `schema_version` means the same schema in both.
enum PostgresSchema {
    /// The first PostgreSQL schema version: SQLite's version 5.
    static let firstVersion = 5

    static let tables: [String] = [
        "CREATE TABLE schema_version (version bigint NOT NULL)",
        """
        CREATE TABLE token (
            id                  bigint PRIMARY KEY CHECK (id = 1),
            initialized         bigint NOT NULL DEFAULT 0,
            label               bytea  NOT NULL,
            serial              text   NOT NULL DEFAULT '',
            uuid                text   NOT NULL DEFAULT '',
            flags               bigint NOT NULL DEFAULT 0,
            backend_kind        text,
            backend_key_id      text,
            backend_key_version text,
            wrapped_root        bytea,
            format_version      bigint NOT NULL,
            epoch               bigint NOT NULL DEFAULT 0,
            pruned_seq          bigint NOT NULL DEFAULT 0,
            generation          bigint NOT NULL DEFAULT 0,
            state_mac           bytea,
            ledger_digest       bytea,
            change              bigint NOT NULL DEFAULT 0
        ) WITH (fillfactor = 50)
        """,
        """
        CREATE TABLE pin (
            role         text   PRIMARY KEY CHECK (role IN ('so', 'user')),
            token_id     bigint NOT NULL DEFAULT 1 REFERENCES token(id) ON DELETE CASCADE,
            kdf          text   NOT NULL,
            salt         bytea  NOT NULL,
            log2n        bigint NOT NULL,
            r            bigint NOT NULL,
            p            bigint NOT NULL,
            sealed       bytea  NOT NULL,
            failed       bigint NOT NULL DEFAULT 0,
            max_attempts bigint NOT NULL
        )
        """,
        """
        CREATE TABLE objects (
            unique_id    text COLLATE "C" PRIMARY KEY,
            token_id     bigint NOT NULL DEFAULT 1 REFERENCES token(id) ON DELETE CASCADE,
            created      bigint NOT NULL,
            seq          bigint NOT NULL,
            public_attrs bytea  NOT NULL,
            sealed_attrs bytea  NOT NULL,
            mac          bytea
        )
        """,
        "CREATE INDEX objects_seq ON objects (seq)",
        "CREATE TABLE tombstones (seq bigint PRIMARY KEY, unique_id text COLLATE \"C\" NOT NULL)",
        """
        CREATE TABLE spent_seeds (
            unique_id text COLLATE "C" NOT NULL,
            digest    bytea NOT NULL,
            PRIMARY KEY (unique_id, digest)
        )
        """,
        """
        CREATE TABLE hourly_calls (
            unique_id text COLLATE "C" NOT NULL,
            hour      bigint NOT NULL,
            calls     bigint NOT NULL,
            PRIMARY KEY (unique_id, hour)
        )
        """,
        """
        CREATE TABLE pin_attempts (
            id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            role    text   NOT NULL CHECK (role IN ('so', 'user')),
            started bigint NOT NULL
        )
        """,
    ]

    /// Inside the first write transaction of a connection (the schema's advisory lock held): creates the schema
    /// when it is missing, else checks its version. A schema of another version is refused
    /// (`.unsupportedFormat`): there is no PostgreSQL step to apply yet.
    static func migrate(_ conn: Connection, schema: String, currentVersion: Int) throws {
        try conn.exec("CREATE SCHEMA IF NOT EXISTS \"\(schema)\"")
        let exists = try conn.withStatement("SELECT pg_catalog.to_regclass(?) IS NOT NULL") { s in
            try s.bind(1, "\"\(schema)\".schema_version")
            return try s.step() && s.int(0) != 0
        }
        if exists {
            let version = try conn.withStatement("SELECT version FROM schema_version") { s in try s.step() ? Int(s.int(0)) : 0 }
            guard version == currentVersion else { throw StoreError.unsupportedFormat(version) }
            return
        }
        for statement in tables { try conn.exec(statement) }
        try conn.run("INSERT INTO schema_version (version) VALUES (?)") { try $0.bind(1, Int64(currentVersion)) }
        try conn.run("INSERT INTO token (id, label, format_version) VALUES (1, ?, ?)") { s in
            try s.bind(1, [UInt8](repeating: 0x20, count: 32))
            try s.bind(2, Int64(TokenDatabase.formatVersion))
        }
    }
}
