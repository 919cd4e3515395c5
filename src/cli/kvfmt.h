/* kvfmt.h: shared helpers of the kv commands: paths with -mount, output of metadata. */
#ifndef REKEY_KVFMT_H
#define REKEY_KVFMT_H

#include <stdio.h>

#include "cli/cli.h"
#include "secrets/kv.h"

/* Copies in to out escaped as cli_esc does, cut after 80 characters, so a bad path can be
 * shown without reaching the terminal raw. */
void kvfmt_escape(const char *in, char *out, size_t outlen);

/* Joins -mount (if given) and path into buf. Returns 0 or a usage error code. */
int kvfmt_path(struct cli_ctx *ctx, const char *path, char *buf, size_t buflen);

/* Prints one version's metadata as Key/Value rows (its strings through cli_esc). */
void kvfmt_version_rows(FILE *f, const struct kv_version_meta *vm);

/* The version's metadata as a JSON object (new reference). */
json_t *kvfmt_version_json(const struct kv_version_meta *vm);

/* The user running the command, for the author field ("alice" or "uid:1000"). */
const char *kvfmt_author(void);

#endif
