/* chain.h: the hash chain of an audit file, the line format every writer and reader shares.
 *
 * Why a chain: an operator must be able to prove that nobody edited, removed or reordered a
 * line. Each line carries the hash of the line before it, so a change anywhere breaks the link
 * at that line, and its own hash, so a change to the last line is seen too.
 *
 * Format: one JSON object per line, the chain fields at fixed places so that a writer finds the
 * last hash with one small read and a verifier or a query reads no JSON:
 *
 *     {"prev":"<64 hex>","time":"YYYY-MM-DDTHH:MM:SS.uuuuuuZ",<body…>,"hash":"<64 hex>"}\n
 *
 * hash = SHA-256 (hex) of the line's bytes before ,"hash": (from '{' up to the end of the
 * body); prev = the hash of the line before. A file's first line is a header record
 * ("type":"header"); its prev is the last hash of the previous file when the file continues a
 * chain (rotation), else a random anchor drawn when the sink was created ("anchor":true). The
 * time is UTC with exactly six fraction digits, so times compare as strings. */
#ifndef REKEY_AUDIT_CHAIN_H
#define REKEY_AUDIT_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define AUDIT_HASH_HEX 64 /* hex digits of a chain hash */
#define AUDIT_TIME_LEN 27 /* "2026-12-06T15:58:37.123456Z" */

/* Offsets of the fixed fields. */
#define AUDIT_PREV_OFF 9                                      /* after {"prev":" */
#define AUDIT_TIME_OFF (AUDIT_PREV_OFF + AUDIT_HASH_HEX + 10) /* after ","time":" */
#define AUDIT_BODY_OFF (AUDIT_TIME_OFF + AUDIT_TIME_LEN + 2)  /* after the time's "," */
#define AUDIT_TAIL_LEN (9 + AUDIT_HASH_HEX + 2)               /* ,"hash":"<hex>"} */
#define AUDIT_LINE_MIN (AUDIT_BODY_OFF + AUDIT_TAIL_LEN)      /* without the newline */

/* The time of us (microseconds since the epoch) as the chain writes it, into out
 * (AUDIT_TIME_LEN + 1 bytes). */
void audit_time_format(int64_t us, char out[AUDIT_TIME_LEN + 1]);

/* Appends one sealed line to buf[*len..cap): the chain fields around body (the JSON members
 * after the time, without braces, starting with a member name), then '\n'. prev is
 * AUDIT_HASH_HEX hex digits; *hash (AUDIT_HASH_HEX + 1) gets the new line's hash. Returns 0,
 * or -RK_ELIMIT when it does not fit (buf unchanged), -RK_EINTERNAL (no SHA-256). */
int audit_line_seal(char *buf, size_t cap, size_t *len, const char *prev, const char *time,
                    const char *body, size_t blen, char hash[AUDIT_HASH_HEX + 1]);

/* Checks one line (without its newline): the fixed fields in place and its own hash. Returns 0
 * with prev and hash (AUDIT_HASH_HEX + 1 each, NUL-terminated), or -RK_ECORRUPT with the
 * reason in why. */
int audit_line_check(const char *line, size_t len, char prev[AUDIT_HASH_HEX + 1],
                     char hash[AUDIT_HASH_HEX + 1], char *why, size_t whylen);

/* 1 when the line (checked) is a header record, else 0. */
int audit_line_is_header(const char *line, size_t len);

/* The hash of the last line from the file's last AUDIT_TAIL_LEN + 1 bytes (tail, ending in
 * "\"}\n"). Returns 0, or -RK_ECORRUPT when they are not the end of a chain line. */
int audit_tail_hash(const char *tail, size_t len, char hash[AUDIT_HASH_HEX + 1]);

/* Checking a chain line by line, across the files of one chain in order. */
struct audit_verifier {
    char last[AUDIT_HASH_HEX + 1]; /* the hash of the last good line */
    int have_last;                 /* 0 before the first line of the first file */
    uint64_t lines;                /* lines checked */
    uint64_t files;
};

/* Checks the next line (without its newline) of the current file; first is 1 for a file's
 * first line. A file must start with a header; each line's prev must be the hash of the line
 * before (across files: of the previous file's last line), its own hash must match. Returns 0,
 * or -RK_ECORRUPT with the reason in why. */
int audit_verify_line(struct audit_verifier *v, const char *line, size_t len, int first, char *why,
                      size_t whylen);

/* Appends s[0..n) to buf[*len..cap) as the inside of a JSON string: '"', '\\' and control
 * characters escaped, valid UTF-8 kept, each invalid byte as \ufffd. Returns 0, or -RK_ELIMIT
 * (buf unchanged past its old *len). */
int audit_json_escape(char *buf, size_t cap, size_t *len, const char *s, size_t n);

#endif
