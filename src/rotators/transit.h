/* transit.h: what the transit secrets engine's API (api/routes-transit.c) asks of kind
 * "transit" (rotators/transit.c): the store entry that rotates a keyring on a schedule, which
 * transit/keys/NAME/config's auto_rotate_period creates. The kind itself is a row of the
 * registry (rotator_transit). */
#ifndef REKEY_ROTATORS_TRANSIT_H
#define REKEY_ROTATORS_TRANSIT_H

#include <jansson.h>
#include <stdint.h>

/* The definition (engine_entry_put's def) of the entry that rotates the keyring at its path
 * every period seconds (> 0) with the engine's steps: key_type as transit_type_name gives it,
 * exportable as the keyring is, and retire_previous false (an API schedule keeps every version
 * verifying, as Vault's auto_rotate_period does). A new reference, or NULL when out of memory. */
json_t *transit_schedule_entry(const char *key_type, int exportable, int64_t period);

#endif
