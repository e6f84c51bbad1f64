#ifndef RYZE_CURL_H
#define RYZE_CURL_H
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic: Swift cannot call them. These fix one
   argument type each. */
CURLcode ryze_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ryze_curl_setopt_pointer(CURL *handle, CURLoption option, const void *value);
CURLcode ryze_curl_setopt_write_function(CURL *handle, size_t (*fn)(char *, size_t, size_t, void *));
CURLcode ryze_curl_setopt_header_function(CURL *handle, size_t (*fn)(char *, size_t, size_t, void *));
CURLcode ryze_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);

#endif
