/* registry.c: the rotators. Adding a kind = one file + one row here. */
#include <string.h>

#include "rotator.h"

/* Defined one per file (generated.c, manual.c, …). */
extern const struct rotator_ops rotator_generated;
extern const struct rotator_ops rotator_manual;

static const struct rotator_ops *const rotators[] = {
    &rotator_generated,
    &rotator_manual,
    NULL,
};

const struct rotator_ops *
rotator_find(const char *kind)
{
    for (size_t i = 0; rotators[i] != NULL; i++)
        if (strcmp(rotators[i]->kind, kind) == 0)
            return rotators[i];
    return NULL;
}
