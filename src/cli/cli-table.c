/* cli-table.c: the list of commands. Adding a command = one cmd-*.c file + one line here. */
#include "cli/cli.h"

extern const struct cli_cmd cmd_operator_init, cmd_operator_rotate_keyring, cmd_lint, cmd_kv_put,
    cmd_kv_get, cmd_kv_list, cmd_kv_metadata, cmd_status, cmd_schedule, cmd_rotate, cmd_rollback,
    cmd_revoke, cmd_recover, cmd_done, cmd_history, cmd_fingerprint;

extern const struct cli_cmd cmd_operator_unseal, cmd_operator_seal;
extern const struct cli_cmd cmd_run;
extern const struct cli_cmd cmd_server;
extern const struct cli_cmd cmd_audit, cmd_audit_verify, cmd_audit_hash;
extern const struct cli_cmd cmd_metrics;
extern const struct cli_cmd cmd_pki_init_ca, cmd_pki_ca;
extern const struct cli_cmd cmd_lease_list, cmd_lease_lookup, cmd_lease_renew, cmd_lease_revoke;

const struct cli_cmd *const cli_commands[] = {
    &cmd_status,
    &cmd_schedule,
    &cmd_metrics,
    &cmd_lint,
    &cmd_rotate,
    &cmd_rollback,
    &cmd_history,
    &cmd_revoke,
    &cmd_recover,
    &cmd_done,
    &cmd_run,
    &cmd_server,
    &cmd_kv_put,
    &cmd_kv_get,
    &cmd_kv_list,
    &cmd_kv_metadata,
    &cmd_fingerprint,
    &cmd_operator_init,
    &cmd_operator_unseal,
    &cmd_operator_seal,
    &cmd_operator_rotate_keyring,
    &cmd_audit,
    &cmd_audit_verify,
    &cmd_audit_hash,
    &cmd_pki_init_ca,
    &cmd_pki_ca,
    &cmd_lease_list,
    &cmd_lease_lookup,
    &cmd_lease_renew,
    &cmd_lease_revoke,
    NULL,
};
