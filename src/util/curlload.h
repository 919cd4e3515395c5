/* curlload.h: libcurl, loaded when first needed.
 *
 * Only http hooks and the CLI's client mode speak HTTP out, yet linking libcurl maps it and
 * its ~20 dependencies (Kerberos, LDAP, SSH, RTMP, …) into every rekey process: ~1.5 MiB of an
 * idle daemon's ~16 MiB. So libcurl is opened with dlopen on first use and reached through
 * CURL_FN. The types and constants still come from <curl/curl.h>. */
#ifndef REKEY_CURLLOAD_H
#define REKEY_CURLLOAD_H

#include <curl/curl.h>

#include "err.h"

struct curl_fns {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
    CURLcode (*easy_perform)(CURL *c);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *c);
    const char *(*easy_strerror)(CURLcode code);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
    void (*slist_free_all)(struct curl_slist *list);
};

/* The loaded functions; valid after curl_load returned 0. */
extern struct curl_fns curl_fn;
#define CURL_FN (&curl_fn)

/* Opens libcurl (once per process, thread-safe) and runs curl_global_init. Returns 0, or
 * -RK_EINTERNAL with a message that says which library is missing and how to install it. */
int curl_load(struct rk_error *err);

#endif
