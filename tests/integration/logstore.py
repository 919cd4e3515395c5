#!/usr/bin/env python3
"""Reads and edits a rekey log store file ("log:PATH", src/store/logstore.c) for the damaged-store
tests (t-store.sh), as they use the sqlite3 CLI on an SQLite store. An edit rewrites the records
with valid lengths and CRCs, so the file holds exactly the damage asked for and nothing else.
Use it on a copy no process has open (and without a FILE-shm beside it).

  logstore.py FILE end                        where the records end (the first zero tag)
  logstore.py FILE keys                       the live keys, one a line
  logstore.py FILE get KEY                    prints KEY's live value
  logstore.py FILE set KEY TEXT               sets KEY's live value to TEXT
  logstore.py FILE zero PREFIX OFF LEN        zeros LEN bytes at OFF (from 0) of the live value of
                                              every key starting with PREFIX
  logstore.py FILE copy DST-PREFIX SRC-KEY    every live key starting with DST-PREFIX gets the
                                              value of SRC-KEY
  logstore.py FILE header FIELD [N]           prints (or sets) a header field: version, end, floor
                                              (end and floor are rewritten only now and then)
"""
import struct
import sys
import zlib

HDR_SIZE = 4096
TAG = 0x6B636572
REC_HDR = 24
T_TXN, T_SNAP = 1, 2
FIELDS = {"version": (8, "<I"), "end": (16, "<Q"), "floor": (24, "<Q")}


def die(msg):
    sys.exit("logstore.py: " + msg)


def parse(data):
    """The records as [type, rev, [[kind, key, value, mod_rev], ...]] and where they end: the
    first zero tag or the end of the file (the header's end may lag behind the records)."""
    if data[:8] != b"rekeylog":
        die("not a log store")
    recs, off = [], HDR_SIZE
    while off + REC_HDR <= len(data):
        tag, length, crc, rtype, zero, rev = struct.unpack_from("<IIIHHq", data, off)
        if tag == 0:
            break
        body = data[off + REC_HDR:off + REC_HDR + length]
        if tag != TAG or zero != 0 or len(body) != length:
            die("bad record at byte %d" % off)
        if zlib.crc32(data[off + 4:off + 8] + data[off + 12:off + REC_HDR + length]) != crc:
            die("bad CRC at byte %d" % off)
        ops, pos = [], 0
        while pos < length:
            kind, _, klen, vlen = struct.unpack_from("<BBHI", body, pos)
            pos += 8
            mod_rev = rev
            if rtype == T_SNAP:
                mod_rev = struct.unpack_from("<q", body, pos)[0]
                pos += 8
            key = body[pos:pos + klen].decode()
            val = body[pos + klen:pos + klen + vlen]
            pos += klen + vlen
            ops.append([kind, key, val, mod_rev])
        recs.append([rtype, rev, ops])
        off += REC_HDR + length
    return recs, off


def live(recs):
    """key -> the op that holds its value now (a PUT), for the keys that exist."""
    cur = {}
    for _, _, ops in recs:
        for op in ops:
            if op[0] == 1:
                cur[op[1]] = op
            else:
                cur.pop(op[1], None)
    return cur


def write(path, data, recs):
    out = bytearray()
    for rtype, rev, ops in recs:
        body = bytearray()
        for kind, key, val, mod_rev in ops:
            k = key.encode()
            body += struct.pack("<BBHI", kind, 0, len(k), len(val))
            if rtype == T_SNAP:
                body += struct.pack("<q", mod_rev)
            body += k + val
        head = struct.pack("<IIIHHq", TAG, len(body), 0, rtype, 0, rev)
        crc = zlib.crc32(head[4:8] + head[12:] + body)
        out += struct.pack("<IIIHHq", TAG, len(body), crc, rtype, 0, rev) + body
    hdr = bytearray(data[:HDR_SIZE])
    end = HDR_SIZE + len(out)
    struct.pack_into("<Q", hdr, 16, end)
    struct.pack_into("<Q", hdr, 24, end)  # as a clean close leaves them
    size = max(len(data), end)
    with open(path, "wb") as f:
        f.write(bytes(hdr) + bytes(out) + bytes(size - end))


def main(argv):
    if len(argv) < 3:
        die(__doc__)
    path, cmd, args = argv[1], argv[2], argv[3:]
    data = open(path, "rb").read()
    if cmd == "header":
        off, fmt = FIELDS[args[0]]
        if len(args) == 1:
            print(struct.unpack_from(fmt, data, off)[0])
            return
        data = bytearray(data)
        struct.pack_into(fmt, data, off, int(args[1]))
        open(path, "wb").write(data)
        return
    recs, end = parse(data)
    cur = live(recs)
    if cmd == "end":
        print(end)
        return
    if cmd == "keys":
        print("\n".join(sorted(cur)))
        return
    if cmd == "get":
        if args[0] not in cur:
            die("no key %r" % args[0])
        sys.stdout.buffer.write(cur[args[0]][2] + b"\n")
        return
    if cmd == "set":
        if args[0] not in cur:
            die("no key %r" % args[0])
        cur[args[0]][2] = args[1].encode()
    elif cmd == "zero":
        off, n = int(args[1]), int(args[2])
        hit = [op for k, op in cur.items() if k.startswith(args[0])]
        if not hit:
            die("no live key starts with %r" % args[0])
        for op in hit:
            if len(op[2]) < off + n:
                die("the value of %s is only %d bytes" % (op[1], len(op[2])))
            op[2] = op[2][:off] + bytes(n) + op[2][off + n:]
    elif cmd == "copy":
        if args[1] not in cur:
            die("no key %r" % args[1])
        hit = [op for k, op in cur.items() if k.startswith(args[0])]
        if not hit:
            die("no live key starts with %r" % args[0])
        for op in hit:
            op[2] = cur[args[1]][2]
    else:
        die("unknown command " + cmd)
    write(path, data, recs)


if __name__ == "__main__":
    main(sys.argv)
