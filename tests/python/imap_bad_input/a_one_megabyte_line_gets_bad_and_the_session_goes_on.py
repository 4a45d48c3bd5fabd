MB = 1024 * 1024
# Before login, to rqmail-login.
r = Raw(login=False)
r.send(b"p1 LOGIN joe " + b"x" * MB + b"\r\n")
line = r.line()
assert re.match(rb"(\*|p1) BAD ", line), line
assert r.last(b"p2 NOOP").startswith(b"p2 OK")
lines = r.cmd(b"L LOGIN joe secret")
assert lines[-1].startswith(b"L OK "), lines
# After login, to rqmail-imapd: a command line, a SEARCH and a STORE each 1 MB long.
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
for probe in [b"a1 NOOP " + b"x" * MB,
              b"a2 SEARCH " + b"OR SEEN " * (MB // 8) + b"ALL",
              b"a3 STORE 1 +FLAGS (" + b"\\Seen " * (MB // 6) + b")",
              b"a4 " + b"y" * MB]:
    start = time.monotonic()
    r.send(probe + b"\r\n")
    line = r.line()
    assert re.match(rb"(\*|a\d) BAD ", line), (probe[:20], line)
    assert time.monotonic() - start < 10
    # Nothing else came for it, and the next command is answered.
    assert r.last(b"n NOOP") == b"n OK NOOP completed\r\n", probe[:20]
assert flags(r, 1) == b"\\Recent" or flags(r, 1) == b"", flags(r, 1)
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
