// dlopen-loaded libcurl (see include/CCurl.h for why it is not linked).
#include "CCurl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    CURLcode (*easy_perform)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
} curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static CURLcode global_result = CURLE_FAILED_INIT;
static char load_error[256];

static void *resolve(void *library, const char *name) {
    void *symbol = dlsym(library, name);
    if (!symbol && !load_error[0]) snprintf(load_error, sizeof load_error, "libcurl.so.4 has no %s", name);
    return symbol;
}

static void load(void) {
    // Never dlclosed: libcurl stays for the life of the process, as it would if linked (the module is NODELETE).
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error, "cannot load libcurl.so.4 (install libcurl4): %s", why ? why : "unknown error");
        return;
    }
    curl.global_init = (CURLcode (*)(long))resolve(library, "curl_global_init");
    curl.easy_init = (CURL * (*)(void)) resolve(library, "curl_easy_init");
    curl.easy_cleanup = (void (*)(CURL *))resolve(library, "curl_easy_cleanup");
    curl.easy_perform = (CURLcode (*)(CURL *))resolve(library, "curl_easy_perform");
    curl.easy_strerror = (const char *(*)(CURLcode))resolve(library, "curl_easy_strerror");
    curl.slist_append = (struct curl_slist * (*)(struct curl_slist *, const char *)) resolve(library, "curl_slist_append");
    curl.slist_free_all = (void (*)(struct curl_slist *))resolve(library, "curl_slist_free_all");
    curl.easy_setopt = (CURLcode (*)(CURL *, CURLoption, ...))resolve(library, "curl_easy_setopt");
    curl.easy_getinfo = (CURLcode (*)(CURL *, CURLINFO, ...))resolve(library, "curl_easy_getinfo");
    if (load_error[0]) return;  // global_result stays CURLE_FAILED_INIT: every entry below refuses
    global_result = curl.global_init(CURL_GLOBAL_DEFAULT);
}

static int ready(void) { return global_result == CURLE_OK; }

CURLcode tg_curl_global_init(void) {
    pthread_once(&load_once, load);
    return global_result;
}

const char *tg_curl_load_error(void) { return load_error; }

CURL *tg_curl_easy_init(void) { return ready() ? curl.easy_init() : NULL; }
void tg_curl_easy_cleanup(CURL *handle) { if (ready() && handle) curl.easy_cleanup(handle); }
CURLcode tg_curl_easy_perform(CURL *handle) { return ready() ? curl.easy_perform(handle) : CURLE_FAILED_INIT; }

const char *tg_curl_easy_strerror(CURLcode code) {
    if (ready()) return curl.easy_strerror(code);
    return load_error[0] ? load_error : "libcurl not initialised";
}

struct curl_slist *tg_curl_slist_append(struct curl_slist *list, const char *value) {
    return ready() ? curl.slist_append(list, value) : NULL;
}
void tg_curl_slist_free_all(struct curl_slist *list) { if (ready() && list) curl.slist_free_all(list); }

CURLcode tg_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return ready() ? curl.easy_setopt(handle, option, value) : CURLE_FAILED_INIT;
}
CURLcode tg_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return ready() ? curl.easy_setopt(handle, option, value) : CURLE_FAILED_INIT;
}
CURLcode tg_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return ready() ? curl.easy_setopt(handle, option, value) : CURLE_FAILED_INIT;
}
CURLcode tg_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return ready() ? curl.easy_setopt(handle, option, value) : CURLE_FAILED_INIT;
}
CURLcode tg_curl_setopt_callback(CURL *handle, CURLoption option, tg_curl_data_callback value) {
    return ready() ? curl.easy_setopt(handle, option, value) : CURLE_FAILED_INIT;
}
CURLcode tg_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return ready() ? curl.easy_setopt(handle, option, value) : CURLE_FAILED_INIT;
}
CURLcode tg_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return ready() ? curl.easy_getinfo(handle, info, value) : CURLE_FAILED_INIT;
}
