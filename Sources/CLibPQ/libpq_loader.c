// dlopen-loaded libpq (see include/CLibPQ.h for why it is not linked).
#include "CLibPQ.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>

static struct {
    int (*lib_version)(void);
    PQconninfoOption *(*conninfo_parse)(const char *, char **);
    void (*conninfo_free)(PQconninfoOption *);
    void (*freemem)(void *);
    PGconn *(*connect_start_params)(const char *const *, const char *const *, int);
    PostgresPollingStatusType (*connect_poll)(PGconn *);
    ConnStatusType (*status)(const PGconn *);
    int (*socket)(const PGconn *);
    int (*set_nonblocking)(PGconn *, int);
    char *(*error_message)(const PGconn *);
    const char *(*parameter_status)(const PGconn *, const char *);
    int (*ssl_in_use)(PGconn *);
    void (*finish)(PGconn *);
    int (*send_query_params)(PGconn *, const char *, int, const Oid *, const char *const *, const int *, const int *,
                             int);
    int (*send_prepare)(PGconn *, const char *, const char *, int, const Oid *);
    int (*send_query_prepared)(PGconn *, const char *, int, const char *const *, const int *, const int *, int);
    int (*flush)(PGconn *);
    int (*consume_input)(PGconn *);
    int (*is_busy)(PGconn *);
    PGresult *(*get_result)(PGconn *);
    ExecStatusType (*result_status)(const PGresult *);
    char *(*result_error_field)(const PGresult *, int);
    int (*ntuples)(const PGresult *);
    int (*nfields)(const PGresult *);
    Oid (*ftype)(const PGresult *, int);
    char *(*getvalue)(const PGresult *, int, int);
    int (*getlength)(const PGresult *, int, int);
    int (*getisnull)(const PGresult *, int, int);
    char *(*cmd_tuples)(PGresult *);
    void (*clear)(PGresult *);
    PQnoticeProcessor (*set_notice_processor)(PGconn *, PQnoticeProcessor, void *);
} pq;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
// Set (release) at the end of a complete load; read (acquire) by every wrapper, so a thread that did not run
// tg_pq_load itself sees either nothing or every symbol.
static atomic_int loaded;
// Set (release) once load() has finished, whatever its outcome: load_error is read only after that.
static atomic_int attempted;
static char load_error[256];

static void *resolve(void *library, const char *name) {
    void *symbol = dlsym(library, name);
    if (!symbol && !load_error[0]) snprintf(load_error, sizeof load_error, "libpq.so.5 has no %s", name);
    return symbol;
}

#define RESOLVE(field, name) (*(void **)(&pq.field) = resolve(library, name))

static void try_load(void);

static void load(void) {
    try_load();
    atomic_store_explicit(&attempted, 1, memory_order_release);
}

static void try_load(void) {
    // Never dlclosed: libpq stays for the life of the process, as it would if linked (the module is NODELETE).
    void *library = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error, "cannot load libpq.so.5 (install libpq5): %s",
                 why ? why : "unknown error");
        return;
    }
    RESOLVE(lib_version, "PQlibVersion");
    RESOLVE(conninfo_parse, "PQconninfoParse");
    RESOLVE(conninfo_free, "PQconninfoFree");
    RESOLVE(freemem, "PQfreemem");
    RESOLVE(connect_start_params, "PQconnectStartParams");
    RESOLVE(connect_poll, "PQconnectPoll");
    RESOLVE(status, "PQstatus");
    RESOLVE(socket, "PQsocket");
    RESOLVE(set_nonblocking, "PQsetnonblocking");
    RESOLVE(error_message, "PQerrorMessage");
    RESOLVE(parameter_status, "PQparameterStatus");
    RESOLVE(ssl_in_use, "PQsslInUse");
    RESOLVE(finish, "PQfinish");
    RESOLVE(send_query_params, "PQsendQueryParams");
    RESOLVE(send_prepare, "PQsendPrepare");
    RESOLVE(send_query_prepared, "PQsendQueryPrepared");
    RESOLVE(flush, "PQflush");
    RESOLVE(consume_input, "PQconsumeInput");
    RESOLVE(is_busy, "PQisBusy");
    RESOLVE(get_result, "PQgetResult");
    RESOLVE(result_status, "PQresultStatus");
    RESOLVE(result_error_field, "PQresultErrorField");
    RESOLVE(ntuples, "PQntuples");
    RESOLVE(nfields, "PQnfields");
    RESOLVE(ftype, "PQftype");
    RESOLVE(getvalue, "PQgetvalue");
    RESOLVE(getlength, "PQgetlength");
    RESOLVE(getisnull, "PQgetisnull");
    RESOLVE(cmd_tuples, "PQcmdTuples");
    RESOLVE(set_notice_processor, "PQsetNoticeProcessor");
    RESOLVE(clear, "PQclear");
    if (load_error[0]) return;  // `loaded` stays 0: every wrapper below refuses
    atomic_store_explicit(&loaded, 1, memory_order_release);
}

static int ready(void) { return atomic_load_explicit(&loaded, memory_order_acquire); }

int tg_pq_load(void) {
    pthread_once(&load_once, load);
    return ready();
}

static const char *failure(void) {
    if (!atomic_load_explicit(&attempted, memory_order_acquire)) return "libpq not loaded yet";
    return load_error[0] ? load_error : "libpq not loaded";
}

const char *tg_pq_load_error(void) { return ready() ? "" : failure(); }

int tg_pq_lib_version(void) { return ready() ? pq.lib_version() : 0; }

PQconninfoOption *tg_pq_conninfo_parse(const char *conninfo, char **errmsg) {
    if (errmsg) *errmsg = NULL;
    return ready() && conninfo ? pq.conninfo_parse(conninfo, errmsg) : NULL;
}
void tg_pq_conninfo_free(PQconninfoOption *options) { if (ready() && options) pq.conninfo_free(options); }
void tg_pq_freemem(void *pointer) { if (ready() && pointer) pq.freemem(pointer); }

PGconn *tg_pq_connect_start_params(const char *const *keywords, const char *const *values, int expand_dbname) {
    return ready() && keywords && values ? pq.connect_start_params(keywords, values, expand_dbname) : NULL;
}
PostgresPollingStatusType tg_pq_connect_poll(PGconn *conn) {
    return ready() && conn ? pq.connect_poll(conn) : PGRES_POLLING_FAILED;
}
ConnStatusType tg_pq_status(const PGconn *conn) { return ready() && conn ? pq.status(conn) : CONNECTION_BAD; }
int tg_pq_socket(const PGconn *conn) { return ready() && conn ? pq.socket(conn) : -1; }
int tg_pq_set_nonblocking(PGconn *conn, int arg) { return ready() && conn ? pq.set_nonblocking(conn, arg) : -1; }
const char *tg_pq_error_message(const PGconn *conn) {
    if (!ready()) return failure();
    return conn ? pq.error_message(conn) : "no connection";
}
const char *tg_pq_parameter_status(const PGconn *conn, const char *name) {
    return ready() && conn && name ? pq.parameter_status(conn, name) : NULL;
}
int tg_pq_ssl_in_use(PGconn *conn) { return ready() && conn ? pq.ssl_in_use(conn) : 0; }
void tg_pq_finish(PGconn *conn) { if (ready() && conn) pq.finish(conn); }

int tg_pq_send_query_params(PGconn *conn, const char *command, int n_params, const Oid *param_types,
                            const char *const *param_values, const int *param_lengths, const int *param_formats,
                            int result_format) {
    if (!ready() || !conn || !command) return 0;
    return pq.send_query_params(conn, command, n_params, param_types, param_values, param_lengths, param_formats,
                                result_format);
}
int tg_pq_send_prepare(PGconn *conn, const char *name, const char *query, int n_params, const Oid *param_types) {
    if (!ready() || !conn || !name || !query) return 0;
    return pq.send_prepare(conn, name, query, n_params, param_types);
}
int tg_pq_send_query_prepared(PGconn *conn, const char *name, int n_params, const char *const *param_values,
                              const int *param_lengths, const int *param_formats, int result_format) {
    if (!ready() || !conn || !name) return 0;
    return pq.send_query_prepared(conn, name, n_params, param_values, param_lengths, param_formats, result_format);
}
int tg_pq_flush(PGconn *conn) { return ready() && conn ? pq.flush(conn) : -1; }
int tg_pq_consume_input(PGconn *conn) { return ready() && conn ? pq.consume_input(conn) : 0; }
int tg_pq_is_busy(PGconn *conn) { return ready() && conn ? pq.is_busy(conn) : 0; }
PGresult *tg_pq_get_result(PGconn *conn) { return ready() && conn ? pq.get_result(conn) : NULL; }

ExecStatusType tg_pq_result_status(const PGresult *result) {
    return ready() && result ? pq.result_status(result) : PGRES_FATAL_ERROR;
}
const char *tg_pq_result_error_field(const PGresult *result, int field) {
    return ready() && result ? pq.result_error_field(result, field) : NULL;
}
int tg_pq_ntuples(const PGresult *result) { return ready() && result ? pq.ntuples(result) : 0; }
int tg_pq_nfields(const PGresult *result) { return ready() && result ? pq.nfields(result) : 0; }
Oid tg_pq_ftype(const PGresult *result, int field) { return ready() && result ? pq.ftype(result, field) : InvalidOid; }
const char *tg_pq_getvalue(const PGresult *result, int row, int field) {
    return ready() && result ? pq.getvalue(result, row, field) : NULL;
}
int tg_pq_getlength(const PGresult *result, int row, int field) {
    return ready() && result ? pq.getlength(result, row, field) : 0;
}
int tg_pq_getisnull(const PGresult *result, int row, int field) {
    return ready() && result ? pq.getisnull(result, row, field) : 1;
}
const char *tg_pq_cmd_tuples(PGresult *result) { return ready() && result ? pq.cmd_tuples(result) : ""; }
void tg_pq_clear(PGresult *result) { if (ready() && result) pq.clear(result); }

// libpq's default notice processor prints the server's NOTICE and WARNING messages on stderr: in a host process
// (every p11-kit consumer) that is noise nobody asked for. This one drops them.
static void quiet_notice(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

void tg_pq_silence_notices(PGconn *conn) {
    if (ready() && conn) pq.set_notice_processor(conn, quiet_notice, NULL);
}
