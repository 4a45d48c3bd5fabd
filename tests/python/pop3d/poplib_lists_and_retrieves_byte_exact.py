msgs = messages()
assert len(msgs) == 3, msgs
assert not open(msgs[1][0], "rb").read().endswith(b"\n"), "message two has no final newline"
sizes = [len(wire(path, stuff=False)) for path, _ in msgs]

p = connect()
assert p.getwelcome() == b"+OK maildrop has 3 messages", p.getwelcome()
assert p.stat() == (3, sum(sizes)), (p.stat(), sizes)
resp, listing, _ = p.list()
assert listing == [b"%d %d" % (i + 1, s) for i, s in enumerate(sizes)], listing
assert p.list(2) == b"+OK 2 %d" % sizes[1]
resp, uids, _ = p.uidl()
assert uids == [b"%d %s" % (i + 1, u.encode()) for i, (_, u) in enumerate(msgs)], uids
for i, (path, _) in enumerate(msgs):
    resp, lines, octets = p.retr(i + 1)
    assert octets == sizes[i], (octets, sizes[i])
    assert b"".join(l + b"\r\n" for l in lines) == wire(path, stuff=False)
caps = p.capa()
for cap in ("TOP", "UIDL", "RESP-CODES", "PIPELINING"):
    assert cap in caps, caps
assert caps["IMPLEMENTATION"] == ["rqmail"], caps
try:
    p._shortcmd("XYZZY")
    raise SystemExit("unknown command accepted")
except poplib.error_proto as e:
    assert e.args[0] == b"-ERR unknown command", e
p.quit()

# The same on the wire, byte for byte: the dot-stuffing, CR LF, the terminator.
msgs = messages()
r = Raw()
for i, (path, _) in enumerate(msgs):
    got = r.multi(b"RETR %d" % (i + 1))
    want = b"+OK %d octets\r\n" % sizes[i] + wire(path) + b".\r\n"
    assert got == want, (got, want)
got = r.multi(b"TOP 1 0")
assert got == b"+OK top of message follows\r\n" + wire(msgs[0][0]).split(b"\r\n\r\n")[0] + b"\r\n\r\n.\r\n", got
got = r.multi(b"TOP 1 2")
assert got.endswith(b"\r\n\r\nline one\r\n..leading dot\r\n.\r\n"), got
assert r.cmd(b"NOOP " + b"x" * 300) == b"-ERR line too long\r\n"
assert r.cmd(b"NOOP") == b"+OK\r\n"
assert r.cmd(b"USER bob") == b"-ERR already authenticated\r\n"
assert r.cmd(b"RETR 4") == b"-ERR no such message\r\n"
# PIPELINING: three commands in one packet get three replies, in order.
r.s.sendall(b"NOOP\r\nLAST\r\nLIST 2\r\n")
assert [r.f.readline() for _ in range(3)] == [b"+OK\r\n", b"+OK 0\r\n", b"+OK 2 %d\r\n" % sizes[1]]
assert r.cmd(b"QUIT") == b"+OK bye\r\n"
r.close()

# After the move to cur/, the UIDs are the same.
p = connect()
resp, again, _ = p.uidl()
assert again == uids, (again, uids)
p.quit()
print("ok")
