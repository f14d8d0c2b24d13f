#ifndef CLIBPQ_H
#define CLIBPQ_H
// libpq for the PostgreSQL token store (Sources/TokenStore/PostgreSQL), loaded with dlopen on first use.
//
// Why not linked: Debian's libpq.so.5 brings 22 libraries with it (krb5 and GSSAPI, LDAP, SASL, gnutls with
// nettle/gmp/idn2, p11-kit, ...), which would load into every process that loads the module although only hosts
// with a PostgreSQL token ever open a connection (docs/plans/postgresql-store.md §1.4, docs/footprint.md). The
// header is still libpq's own (Debian's libpq-dev), for its types and constants; only these functions are called.
//
// Only the asynchronous API is wrapped (plus result accessors), so that the Swift side can keep a deadline on
// every call with poll(2) on tg_pq_socket: nothing here waits on the network by itself. None is variadic.
// Before tg_pq_load succeeded every function fails safely: NULL, -1, 0, CONNECTION_BAD, PGRES_POLLING_FAILED,
// PGRES_FATAL_ERROR, as the libpq function itself does for a NULL connection or result.
//
// Debian's libpq-dev installs the header as /usr/include/postgresql/libpq-fe.h (pg_config --includedir). It is
// named with its directory, not found through -I/usr/include/postgresql: SwiftPM does not pass a C target's
// cSettings on to the Swift targets that import it, which need the header too; its own quoted includes
// (postgres_ext.h, pg_config_ext.h) resolve next to it.
#include <postgresql/libpq-fe.h>

/// Loads libpq.so.5 once per process (RTLD_NOW | RTLD_LOCAL, never dlclosed); later calls return the first
/// outcome. 1 when loaded, 0 when not; then tg_pq_load_error() says why.
int tg_pq_load(void);
/// Why loading libpq failed: "" once it is loaded, "libpq not loaded yet" before tg_pq_load ran.
const char *tg_pq_load_error(void);

int tg_pq_lib_version(void);

PQconninfoOption *tg_pq_conninfo_parse(const char *conninfo, char **errmsg);
void tg_pq_conninfo_free(PQconninfoOption *options);
void tg_pq_freemem(void *pointer);

PGconn *tg_pq_connect_start_params(const char *const *keywords, const char *const *values, int expand_dbname);
PostgresPollingStatusType tg_pq_connect_poll(PGconn *conn);
ConnStatusType tg_pq_status(const PGconn *conn);
int tg_pq_socket(const PGconn *conn);
int tg_pq_set_nonblocking(PGconn *conn, int arg);
const char *tg_pq_error_message(const PGconn *conn);
const char *tg_pq_parameter_status(const PGconn *conn, const char *name);
int tg_pq_ssl_in_use(PGconn *conn);
void tg_pq_finish(PGconn *conn);

int tg_pq_send_query_params(PGconn *conn, const char *command, int n_params, const Oid *param_types,
                            const char *const *param_values, const int *param_lengths, const int *param_formats,
                            int result_format);
int tg_pq_send_prepare(PGconn *conn, const char *name, const char *query, int n_params, const Oid *param_types);
int tg_pq_send_query_prepared(PGconn *conn, const char *name, int n_params, const char *const *param_values,
                              const int *param_lengths, const int *param_formats, int result_format);
int tg_pq_flush(PGconn *conn);
int tg_pq_consume_input(PGconn *conn);
int tg_pq_is_busy(PGconn *conn);
PGresult *tg_pq_get_result(PGconn *conn);

ExecStatusType tg_pq_result_status(const PGresult *result);
const char *tg_pq_result_error_field(const PGresult *result, int field);
int tg_pq_ntuples(const PGresult *result);
int tg_pq_nfields(const PGresult *result);
Oid tg_pq_ftype(const PGresult *result, int field);
const char *tg_pq_getvalue(const PGresult *result, int row, int field);
int tg_pq_getlength(const PGresult *result, int row, int field);
int tg_pq_getisnull(const PGresult *result, int row, int field);
const char *tg_pq_cmd_tuples(PGresult *result);
// Drops the server's notices instead of libpq's default, which prints them on stderr.
void tg_pq_silence_notices(PGconn *conn);
void tg_pq_clear(PGresult *result);

#endif
