/* libFuzzer target: a lease's store record reader (engine/leases-record.c lr_parse: the flat
 * reader for what leases.c writes, jansson for anything else). Any input is parsed or refused
 * without a crash; every string of an accepted record is terminated within its field; and an
 * accepted record written again (leases_record_encode) reads back to the same lease. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/leases-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
terminated(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        abort();
}

/* The same lease: strings compared up to their ends (a field written twice may leave bytes of
 * the longer first value after the second one's end). */
static int
same(const struct lease_info *a, const struct lease_info *b)
{
    return strcmp(a->id, b->id) == 0 && strcmp(a->db, b->db) == 0 &&
           strcmp(a->role, b->role) == 0 && strcmp(a->username, b->username) == 0 &&
           strcmp(a->accessor, b->accessor) == 0 && strcmp(a->last_error, b->last_error) == 0 &&
           a->issued == b->issued && a->expires == b->expires && a->max_expires == b->max_expires &&
           a->last_renewal == b->last_renewal && a->failures == b->failures &&
           a->irrevocable == b->irrevocable && a->pending == b->pending;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lease_info a, b;
    char *text = NULL;

    memset(&a, 0, sizeof(a));
    if (lr_parse(data, size, &a) != 0)
        return 0;
    terminated(a.id, sizeof(a.id));
    terminated(a.db, sizeof(a.db));
    terminated(a.role, sizeof(a.role));
    terminated(a.username, sizeof(a.username));
    terminated(a.accessor, sizeof(a.accessor));
    terminated(a.last_error, sizeof(a.last_error));
    if (leases_record_encode(&a, &text) != 0)
        return 0; /* out of memory */
    memset(&b, 0, sizeof(b));
    if (lr_parse((const unsigned char *)text, strlen(text), &b) != 0 || !same(&a, &b))
        abort();
    free(text);
    return 0;
}
