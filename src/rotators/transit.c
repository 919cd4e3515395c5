/* transit.c: kind "transit" (planned: settings only, no rotator yet): a named keyring
 * (rsa-4096, ed25519, ecdsa-p256) whose new version signs while older ones still verify. */
#include <stddef.h>

#include "rotators/rotator.h"

static const struct inv_setting transit_settings[] = {
    {.name = "key_type",
     .type = IS_ENUM,
     .flags = IS_REQUIRED,
     .choices = "rsa-4096|ed25519|ecdsa-p256",
     .help = "the key's algorithm"},
    {.name = "exportable",
     .type = IS_BOOL,
     .def = "false",
     .help = "whether the private key may be exported"},
    {0},
};

const struct rotator_ops rotator_transit = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "transit",
    .settings = transit_settings,
    .default_field = "key",
    .fixed_field = 1,
};
