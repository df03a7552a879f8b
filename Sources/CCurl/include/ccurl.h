#ifndef HUB_CCURL_H
#define HUB_CCURL_H
#include <curl/curl.h>
#include <stddef.h>

/// Non-variadic wrappers around curl_easy_setopt / curl_easy_getinfo, which Swift cannot call.
CURLcode ccurl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ccurl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode ccurl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode ccurl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);

typedef size_t (*ccurl_write_fn)(char *data, size_t size, size_t nmemb, void *userdata);
CURLcode ccurl_setopt_write_function(CURL *handle, ccurl_write_fn fn);
CURLcode ccurl_setopt_header_function(CURL *handle, ccurl_write_fn fn);

typedef size_t (*ccurl_read_fn)(char *buffer, size_t size, size_t nitems, void *userdata);
CURLcode ccurl_setopt_read_function(CURL *handle, ccurl_read_fn fn);

CURLcode ccurl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode ccurl_getinfo_string(CURL *handle, CURLINFO info, char **value);
CURLcode ccurl_getinfo_off(CURL *handle, CURLINFO info, curl_off_t *value);
#endif
