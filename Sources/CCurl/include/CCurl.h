#ifndef CCURL_H
#define CCURL_H
// libcurl for the KeyWrap HTTP layer (Sources/KeyWrap/HTTP), loaded with dlopen on first use.
//
// Why not linked: libcurl (Debian's, OpenSSL flavour) brings about 30 libraries with it (gnutls through librtmp
// and libldap, krb5, nettle, p11-kit, ...): 5.6 MB of RSS and most of the load time in every process that loads
// the module, although only tokens on a cloud backend ever send a request (docs/footprint.md). The header is
// still libcurl's own, for its types and constants; only these functions are called.
//
// curl_easy_setopt / curl_easy_getinfo are variadic, which Swift cannot call: the typed setters are the only way
// Swift touches them. Before tg_curl_global_init succeeded every function fails safely (NULL, CURLE_FAILED_INIT).
#include <curl/curl.h>
#include <stddef.h>

typedef size_t (*tg_curl_data_callback)(char *data, size_t size, size_t nmemb, void *userdata);

/// Loads libcurl.so.4 and runs curl_global_init(CURL_GLOBAL_DEFAULT), once per process; later calls return the
/// first outcome. On failure, tg_curl_load_error() says why.
CURLcode tg_curl_global_init(void);
/// Why loading libcurl failed ("" when it did not).
const char *tg_curl_load_error(void);

CURL *tg_curl_easy_init(void);
void tg_curl_easy_cleanup(CURL *handle);
CURLcode tg_curl_easy_perform(CURL *handle);
const char *tg_curl_easy_strerror(CURLcode code);
struct curl_slist *tg_curl_slist_append(struct curl_slist *list, const char *value);
void tg_curl_slist_free_all(struct curl_slist *list);

CURLcode tg_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode tg_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode tg_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode tg_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode tg_curl_setopt_callback(CURL *handle, CURLoption option, tg_curl_data_callback value);
CURLcode tg_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode tg_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);

#endif
