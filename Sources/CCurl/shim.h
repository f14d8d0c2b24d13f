#ifndef CCURL_SHIM_H
#define CCURL_SHIM_H
// libcurl for the KeyWrap HTTP layer (Sources/KeyWrap/HTTP). curl_easy_setopt / curl_easy_getinfo are
// variadic, which Swift cannot call: these typed inline wrappers are the only way Swift touches them.
#include <curl/curl.h>

typedef size_t (*tg_curl_data_callback)(char *data, size_t size, size_t nmemb, void *userdata);

static inline CURLcode tg_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode tg_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode tg_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode tg_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode tg_curl_setopt_callback(CURL *handle, CURLoption option, tg_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode tg_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode tg_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

#endif
