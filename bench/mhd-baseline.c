/* mhd-baseline: the smallest libmicrohttpd server answering a fixed JSON body, the ceiling the
 * rekey HTTP core is measured against (bench/http-baseline.sh). Same threading as rekey's
 * server: an epoll thread pool with one thread per core, the response queued on the second
 * handler call so keep-alive holds. Usage: mhd-baseline [port] (0 = ephemeral); prints the
 * port on stdout and serves until killed. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char body[] = "{\"initialized\":true,\"sealed\":false,\"version\":\"1.15.0\"}";
static struct MHD_Response *resp;

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
          const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    static int marker;

    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    if (*con_cls == NULL) {
        *con_cls = &marker;
        return MHD_YES;
    }
    *upload_size = 0;
    return MHD_queue_response(c, MHD_HTTP_OK, resp);
}

int
main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned port = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 0;
    struct sockaddr_in sa;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, on_access,
                         NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned)(ncpu > 0 ? ncpu : 2), MHD_OPTION_CONNECTION_LIMIT, 1024u,
                         MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "mhd-baseline: cannot start on port %u\n", port);
        return 1;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("%u\n", info != NULL ? info->port : port);
    fflush(stdout);
    for (;;)
        pause();
}
