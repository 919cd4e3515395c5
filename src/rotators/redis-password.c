/* redis-password.c: kind "redis-password" (planned: settings only, no rotator yet): a Redis ACL
 * user's password, two valid at once during the switch (ACL SETUSER u >new, later <old). */
#include <stddef.h>

#include "rotators/rotator.h"

static const struct inv_setting redis_password_settings[] = {
    {.name = "address", .type = IS_STRING, .flags = IS_REQUIRED, .help = "host:port"},
    {.name = "username", .type = IS_STRING, .def = "default", .help = "the ACL user"},
    {0},
};

const struct rotator_ops rotator_redis_password = {
    .version = ROTATOR_OPS_VERSION,
    .kind = "redis-password",
    .settings = redis_password_settings,
    .default_field = "password",
};
