/* envelope.h: the shape of every JSON answer, Vault's, in one place: the envelope around a
 * success's data, and the body of an error. Routes build their answers with these (never their
 * own json_pack of the members), so a member added or renamed changes every route at once. */
#ifndef REKEY_API_ENVELOPE_H
#define REKEY_API_ENVELOPE_H

#include <stddef.h>

#include <jansson.h>

/* A random UUID (version 4) as text, 36 characters and a NUL: the envelope's request_id. The
 * bytes come from RAND_bytes, drawn a few KiB at a time into a per-thread pool: one DRBG call
 * per request was a measurable share of a cached read. Not for keys or nonces. Returns 0, or
 * -1 when the random generator failed (out is then ""). */
int api_request_id(char out[40]);

/* Vault's response envelope, members in this order: {"request_id":"<uuid>","lease_id":"",
 * "renewable":false,"lease_duration":0,"data":data,"wrap_info":null,"warnings":null,
 * "auth":auth}. Steals data and auth (either may be NULL: JSON null). Returns NULL on
 * allocation failure or when no request id could be drawn (data and auth are then released;
 * http_respond_json answers a NULL body 500). */
json_t *api_envelope(json_t *data, json_t *auth);

/* The same envelope as text around a data member the caller writes itself (the KV read path
 * splices a stored value without parsing it again), byte for byte what json_dumps(JSON_COMPACT)
 * gives for api_envelope(data, NULL): the text before data goes into head (a new request id
 * each call), the text after it is api_envelope_tail. Returns the length of head, or 0 when no
 * request id could be drawn. */
#define API_ENVELOPE_HEAD_MAX 128
size_t api_envelope_head(char head[API_ENVELOPE_HEAD_MAX]);

/* The envelope's text after data; *len (may be NULL) gets its length. A constant. */
const char *api_envelope_tail(size_t *len);

/* Vault's error body: {"errors":[msg]}, or {"errors":[]} when msg is NULL (Vault's plain not
 * found); with "data" after it when data is not NULL (stolen: a failed rotation says what it
 * did). A msg that is not UTF-8 becomes "error message not representable" (messages never hold
 * a secret, but may quote a path). Returns NULL on allocation failure. */
json_t *api_errors(const char *msg, json_t *data);

/* api_errors as text, for answers that must not allocate: with no message, and with a constant
 * message (a string literal that needs no JSON escaping). */
#define API_ERRORS_NONE "{\"errors\":[]}"
#define API_ERRORS_TEXT(msg) "{\"errors\":[\"" msg "\"]}"

#endif
