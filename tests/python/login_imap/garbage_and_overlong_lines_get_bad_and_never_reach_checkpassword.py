probes = [
    (b"A" * 9000 + b"\r\n", [b"* BAD line too long"]),
    (b"\x00\xff garbage\r\n", [b"* BAD missing or invalid tag"]),
    (b"a+ NOOP\r\n", [b"* BAD missing or invalid tag"]),
    (b"t" * 65 + b" NOOP\r\n", [b"* BAD tag too long"]),
    (b"\r\n", [b"* BAD missing or invalid tag"]),
    (b"a\r\n", [b"a BAD syntax error"]),
    (b"a BOGUS\r\n", [b"a BAD unknown command"]),
    (b"a SELECT INBOX\r\n", [b"a NO log in first"]),
    (b"a ENABLE UTF8=ACCEPT\r\n", [b"a BAD ENABLE is valid only after login"]),
    (b"a LOGIN joe\r\n", [b"a BAD syntax error"]),
    (b'a LOGIN "joe secret\r\n', [b"a BAD syntax error: unterminated"]),
    (b'a LOGIN joe "sec\\ret"\r\n', [b"a BAD syntax error: bad escape"]),
    (b"a LOGIN (joe) secret\r\n", [b"a BAD syntax error"]),
    (b"a LOGIN joe secret extra\r\n", [b"a BAD syntax error: unexpected arguments"]),
    (b"a LOGIN joe  secret\r\n", [b"a BAD syntax error"]),
    (b"a LOGIN j\x01oe secret\r\n", [b"a BAD syntax error"]),
    (b"a LOGIN joe {3x}\r\n", [b"a BAD syntax error"]),
    # A refused command's non-synchronizing literal is read and thrown away: the LOGIN
    # inside it is never run.
    (b"a BOGUS {18+}\r\nb LOGIN joe secret\r\n", [b"a BAD unknown command"]),
    (b"a CAPABILITY extra\r\n", [b"a BAD syntax error"]),
    (b"a AUTHENTICATE PLAIN !!!\r\n", [b"a BAD invalid base64"]),
    (b"a AUTHENTICATE PLAIN " + b"A" * 9000 + b"\r\n", [b"* BAD line too long"]),
    (b"a ID NIL\r\n", [b"* ID NIL\r\n", b"a OK ID completed"]),
    (b'a ID ("name" "x" "version" {1+}\r\n1 "os" NIL)\r\n', [b"* ID NIL\r\n", b"a OK"]),
    (b"a ID (\r\n", [b"a BAD syntax error"]),
    (b"a NOOP\r\n", [b"a OK NOOP completed"]),
]
logout = (b"z LOGOUT\r\n", [b"* BYE", b"z OK LOGOUT completed"])
# All at once, a dozen to a connection (20 errors close one): the front must answer
# each in turn.
for first in range(0, len(probes), 12):
    chunk = probes[first:first + 12] + [logout]
    s, f = connect()
    s.sendall(b"".join(p for p, _ in chunk))
    for probe, wants in chunk:
        for want in wants:
            line = f.readline()
            assert line.startswith(want), (probe[:40], want, line)
    assert f.readline() == b"", "connection not closed after LOGOUT"

# A client that only sends garbage is cut off.
s, f = connect()
s.sendall(b"x BOGUS\r\n" * 25)
for _ in range(20):
    line = f.readline()
    assert line == b"x BAD unknown command\r\n", line
assert f.readline().startswith(b"* BYE too many errors")
assert f.readline() == b""
