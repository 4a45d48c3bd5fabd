# Before login, in rqmail-login.
r = Raw(login=False)
assert r.last(b"p1 XYZZY").startswith(b"p1 BAD "), "front"
assert r.last(b"p2 FETCHX 1 FLAGS").startswith(b"p2 BAD ")
# After login, in rqmail-imapd.
lines = r.cmd(b"L LOGIN joe secret")
assert lines[-1].startswith(b"L OK "), lines
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
for probe in [
    b"a1 XYZZY",
    b"a2 XYZZY with arguments (and parens)",
    b"a3 UID XYZZY 1",
    b"a4 UID",
    b"a5 UID SELECT INBOX",
    b"a6 FETCHX 1 FLAGS",
    b"a7 STARTTLS",
    b"a8 AUTHENTICATE PLAIN",
]:
    tag = probe.split(b" ")[0]
    lines = r.cmd(probe)
    assert len(lines) == 1 and lines[0].startswith(tag + b" BAD "), (probe, lines)
assert r.last(b"n NOOP") == b"n OK NOOP completed\r\n"
assert flags(r, 1) == b"\\Recent" or flags(r, 1) == b"", flags(r, 1)
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
