import os, poplib, ssl, time
from rqtest import tls_context; ctx = tls_context()
MAILDIR = os.environ["MAILDIR"]

def files():
    """unique name -> the message as RETR carries it, unstuffed."""
    found = {}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(MAILDIR, sub)):
            data = open(os.path.join(MAILDIR, sub, name), "rb").read()
            wire = data.replace(b"\n", b"\r\n")
            if not wire.endswith(b"\r\n"):
                wire += b"\r\n"
            found[name.split(":")[0]] = wire
    return found

def login(implicit):
    # The previous session's rqmail-pop3d may still hold the maildrop's lock for a moment.
    for attempt in range(50):
        if implicit:
            p = poplib.POP3_SSL("127.0.0.1", int(os.environ["POP3S_PORT"]), context=ctx, timeout=30)
            assert "STLS" not in p.capa()
        else:
            p = poplib.POP3("127.0.0.1", int(os.environ["STLS_PORT"]), timeout=30)
            caps = p.capa()
            assert "STLS" in caps and "USER" not in caps, caps
            p.stls(ctx)
        p.user("joe")
        try:
            r = p.pass_("secret")
            assert r.startswith(b"+OK"), r
            return p
        except poplib.error_proto:
            p.close()
            time.sleep(0.1)
    raise SystemExit("no login")

want = files()
assert len(want) == 5, sorted(want)
for implicit in (False, True):
    p = login(implicit)
    count, total = p.stat()
    assert count == len(want) and total == sum(len(w) for w in want.values()), (count, total)
    resp, listing, _ = p.list()
    resp, uidls, _ = p.uidl()
    sizes = dict(l.split() for l in listing)
    uids = dict(l.split() for l in uidls)
    assert sorted(u.decode() for u in uids.values()) == sorted(want), (uids, sorted(want))
    for n, uid in uids.items():
        expected = want[uid.decode()]
        assert int(sizes[n]) == len(expected), (n, sizes[n], len(expected))
        resp, lines, octets = p.retr(int(n))
        assert resp.startswith(b"+OK"), resp
        got = b"".join(l + b"\r\n" for l in lines)
        assert got == expected, (n, got[:200], expected[:200])
        # TOP n 0: the header and the empty line after it.
        resp, lines, _ = p.top(int(n), 0)
        head = expected.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        assert b"".join(l + b"\r\n" for l in lines) == head, (n, lines)
    assert p.quit().startswith(b"+OK")
    # QUIT moved everything to cur/ and changed nothing else.
    assert os.listdir(os.path.join(MAILDIR, "new")) == []
    assert files() == want
    print("ok", "pop3s" if implicit else "stls")
