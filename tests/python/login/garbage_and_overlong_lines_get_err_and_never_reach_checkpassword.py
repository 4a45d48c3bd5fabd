s, f = connect()
probes = [
    (b"A" * 300 + b"\r\n", b"-ERR line too long"),
    (b"\x00\xff\xfe garbage\r\n", b"-ERR unknown command"),
    (b"STAT\r\n", b"-ERR log in first"),
    (b"RETR 1\r\n", b"-ERR log in first"),
    (b"PASS secret\r\n", b"-ERR USER first"),
    (b"USER\r\n", b"-ERR syntax"),
    (b"USER jo\x00e\r\n", b"+OK"),
    (b"PASS secret\r\n", b"-ERR [AUTH] authentication failed"),
    (b"USER joe\r\n", b"+OK"),
    (b"PASS\r\n", b"-ERR syntax"),
    (b"USER joe\r\n", b"+OK"),
    (b"PASS " + b"x" * 600 + b"\r\n", b"-ERR line too long"),
    (b"AUTH PLAIN " + b"A" * 3000 + b"\r\n", b"-ERR line too long"),
    (b"AUTH PLAIN " + base64.b64encode(b"\0joe\0" + b"p" * 600) + b"\r\n", b"-ERR [AUTH] authentication failed"),
    (b"APOP joe 0123456789abcdef0123456789abcdef\r\n", b"-ERR APOP not supported"),
    (b"STLS extra\r\n", b"-ERR syntax"),
    (b"NOOP\r\n", b"+OK"),
    (b"QUIT\r\n", b"+OK bye"),
]
# All at once: the front must answer each in turn (PIPELINING).
s.sendall(b"".join(p for p, _ in probes))
for probe, want in probes:
    line = f.readline()
    assert line.startswith(want), (probe[:40], line)
assert f.readline() == b"", "connection not closed after QUIT"

# A client that only sends garbage is cut off.
s, f = connect()
s.sendall(b"BOGUS\r\n" * 25)
for _ in range(20):
    line = f.readline()
    assert line == b"-ERR unknown command\r\n", line
assert f.readline().startswith(b"-ERR too many errors")
assert f.readline() == b""
