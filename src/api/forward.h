/* forward.h: a standby's way to the leader. Several servers share one etcd store but only the
 * leader runs the lease manager (store/leader.h), so the routes that need it (database/creds,
 * sys/leases/...) are forwarded by a standby to the leader's API address and the leader's answer
 * is relayed to the client, as Vault's standbys do: a client pointed at any server gets
 * credentials.
 *
 * What goes to the leader: the method (LIST for a GET ?list=true), the decoded path encoded
 * again (these routes take no other query argument), the body as received, and only the
 * headers that matter: X-Vault-Token (also from "Authorization: Bearer"), Content-Type,
 * X-Vault-Request, X-Vault-Wrap-TTL, X-Forwarded-For (the client's address, believed by the
 * leader only when this server is one of its trusted_proxies) and FORWARD_HEADER. What comes
 * back: the status, Content-Type, Retry-After and the body. The leader checks the token (so a
 * limited token's use is spent once) and records the request in its audit log; the standby's
 * own audit log records the request and the relayed status as for any other request.
 *
 * Loops: a request carrying FORWARD_HEADER is never forwarded again; a standby that gets one
 * answers 503 (the leader it was sent to has just lost the lead: the client retries).
 * TLS: an https leader is verified (peer and host name) against REKEY_CACERT, else
 * VAULT_CACERT (the CA file the CLI uses; the server's configuration names no CA), else the
 * system's store; verification is never turned off. No proxy, no redirect. Timeouts:
 * FORWARD_CONNECT_MS to connect, FORWARD_TIMEOUT_MS for the whole exchange.
 *
 * Secrets: the token is copied only into secure memory for libcurl's header list; the bodies
 * (database/creds answers hold a password) are never logged and the relay buffer is wiped
 * (OPENSSL_cleanse) once the answer is queued. Log lines name the method, path, leader and
 * status only. */
#ifndef REKEY_API_FORWARD_H
#define REKEY_API_FORWARD_H

#include "api/http.h"

#define FORWARD_HEADER "X-Rekey-Forwarded"
#define FORWARD_CONNECT_MS 1000
#define FORWARD_TIMEOUT_MS 30000
#define FORWARD_BODY_MAX (32 * 1024 * 1024) /* a longer answer from the leader gives 502 */

/* For a handler that needs the leader, called after api_require_unsealed and before any
 * authorisation of its own. Returns 0 when this server serves req itself: it leads, or its store
 * has no leases (one server), or req carries FORWARD_HEADER and this server leads. Returns 1
 * when req has been answered: the leader's answer relayed, or 503 when req carries
 * FORWARD_HEADER (no second hop), when no leader is known, or when the leader could not be
 * reached or did not answer in time (the message names its address and says the request can
 * be retried), or 502 when its answer was not usable (too long, a bad status). Never logs the
 * token or a body. */
int api_forward_to_leader(struct http_request *req);

#endif
