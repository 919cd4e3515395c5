/* curlload.c: libcurl, loaded when first needed (see curlload.h). */
#include "curlload.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#define CURL_SONAME "libcurl.so.4"

struct curl_fns curl_fn;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_msg[200]; /* empty when loaded */

static void *
sym(void *h, const char *name)
{
    void *p = dlsym(h, name);

    if (p == NULL && load_msg[0] == '\0')
        snprintf(load_msg, sizeof(load_msg), "%s has no %s", CURL_SONAME, name);
    return p;
}

static void
load(void)
{
    void *h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    CURLcode (*global_init)(long);

    if (h == NULL) {
        snprintf(load_msg, sizeof(load_msg),
                 "cannot load %s, which HTTP requests need (apt-get install libcurl4)",
                 CURL_SONAME);
        return;
    }
    /* POSIX allows converting dlsym's object pointer to a function pointer. */
    *(void **)&curl_fn.easy_init = sym(h, "curl_easy_init");
    *(void **)&curl_fn.easy_setopt = sym(h, "curl_easy_setopt");
    *(void **)&curl_fn.easy_perform = sym(h, "curl_easy_perform");
    *(void **)&curl_fn.easy_getinfo = sym(h, "curl_easy_getinfo");
    *(void **)&curl_fn.easy_cleanup = sym(h, "curl_easy_cleanup");
    *(void **)&curl_fn.easy_strerror = sym(h, "curl_easy_strerror");
    *(void **)&curl_fn.slist_append = sym(h, "curl_slist_append");
    *(void **)&curl_fn.slist_free_all = sym(h, "curl_slist_free_all");
    *(void **)&global_init = sym(h, "curl_global_init");
    if (load_msg[0] != '\0')
        return;
    if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        snprintf(load_msg, sizeof(load_msg), "libcurl failed to initialise");
}

int
curl_load(struct rk_error *err)
{
    pthread_once(&load_once, load);
    if (load_msg[0] != '\0')
        return rk_error_set(err, RK_EINTERNAL, "%s", load_msg);
    return 0;
}
