r = Raw()
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
for probe in [
    b"a1 FETCH 1 (FLAGS",
    b"a2 FETCH 1 FLAGS)",
    b"a3 FETCH 1:* (FLAGS (UID)",
    b"a4 FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)]",
    b"a5 STORE 1 +FLAGS (\\Seen",
    b"a6 STORE 1 +FLAGS \\Seen)",
    b"a7 STORE 1 FLAGS ((\\Seen)",
    b"a8 SEARCH (OR SEEN UNSEEN",
    b"a9 SEARCH SEEN)",
    b"a10 SEARCH ((ALL)",
    b"a11 UID FETCH 1 (FLAGS",
    b"a12 UID STORE 1 +FLAGS (\\Deleted",
    b"a13 UID SEARCH (ALL",
    b"a14 FETCH 1 )FLAGS(",
]:
    tag = probe.split(b" ")[0]
    lines = r.cmd(probe)
    assert lines[-1].startswith(tag + b" BAD "), (probe, lines)
    # Nothing else: no FETCH data, no SEARCH result for a command that was refused.
    assert len(lines) == 1, (probe, lines)
# The session goes on, and no flag was set by the refused STOREs.
assert flags(r, 1) == b"", flags(r, 1)
lines = r.cmd(b"b SEARCH ALL")
assert lines == [b"* SEARCH 1 2\r\n", b"b OK SEARCH completed\r\n"], lines
assert r.last(b"c LOGOUT").startswith(b"c OK")
print("ok")
