#include "cli/kvfmt.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/parse.h"
#include "util/timeutil.h"

void
kvfmt_escape(const char *in, char *out, size_t outlen)
{
    const char *e = cli_esc(in);

    snprintf(out, outlen, "%.80s%s", e, strlen(e) > 80 ? "..." : "");
}

int
kvfmt_path(struct cli_ctx *ctx, const char *path, char *buf, size_t buflen)
{
    const char *mount = cli_opt(ctx, "mount");
    int n;
    struct rk_error err = {0};

    if (mount != NULL && *mount != '\0') {
        size_t ml = strlen(mount);
        while (ml > 0 && mount[ml - 1] == '/')
            ml--;
        n = snprintf(buf, buflen, "%.*s/%s", (int)ml, mount, path);
    } else {
        n = snprintf(buf, buflen, "%s", path);
    }
    if (n < 0 || (size_t)n >= buflen)
        return cli_usage_error(ctx, "path is longer than %d bytes", PATH_MAX_LEN);
    if (path_validate(buf, strlen(buf), &err) != 0) {
        char shown[4 * 80 + 8];
        kvfmt_escape(buf, shown, sizeof(shown));
        return cli_usage_error(ctx, "bad path '%s': %s", shown, err.msg);
    }
    return 0;
}

void
kvfmt_version_rows(FILE *f, const struct kv_version_meta *vm)
{
    char ts[40];

    fprintf(f, "%-16s %s\n", "Key", "Value");
    fprintf(f, "%-16s %s\n", "---", "-----");
    time_format_rfc3339(vm->created_us, ts, sizeof(ts));
    fprintf(f, "%-16s %s\n", "created_time", ts);
    if (vm->deletion_us != 0)
        time_format_rfc3339(vm->deletion_us, ts, sizeof(ts));
    fprintf(f, "%-16s %s\n", "deletion_time", vm->deletion_us != 0 ? ts : "n/a");
    fprintf(f, "%-16s %s\n", "destroyed", vm->destroyed ? "true" : "false");
    fprintf(f, "%-16s %llu\n", "version", (unsigned long long)vm->version);
    fprintf(f, "%-16s %s\n", "stage", kv_stage_name(vm->stage));
    fprintf(f, "%-16s %s\n", "fingerprint", cli_esc(vm->fingerprint));
    if (vm->author[0])
        fprintf(f, "%-16s %s\n", "author", cli_esc(vm->author));
    if (vm->reason[0])
        fprintf(f, "%-16s %s\n", "reason", cli_esc(vm->reason));
}

json_t *
kvfmt_version_json(const struct kv_version_meta *vm)
{
    char ts[40], del[40];

    time_format_rfc3339(vm->created_us, ts, sizeof(ts));
    del[0] = '\0';
    if (vm->deletion_us != 0)
        time_format_rfc3339(vm->deletion_us, del, sizeof(del));
    return json_pack("{s:s, s:s, s:b, s:I, s:s, s:s, s:s, s:s}", "created_time", ts,
                     "deletion_time", del, "destroyed", vm->destroyed, "version",
                     (json_int_t)vm->version, "stage", kv_stage_name(vm->stage), "fingerprint",
                     vm->fingerprint, "author", vm->author, "reason", vm->reason);
}

const char *
kvfmt_author(void)
{
    static char buf[64];
    struct passwd *pw = getpwuid(getuid());

    if (pw != NULL && pw->pw_name != NULL)
        snprintf(buf, sizeof(buf), "%s", pw->pw_name);
    else
        snprintf(buf, sizeof(buf), "uid:%u", (unsigned)getuid());
    return buf;
}
