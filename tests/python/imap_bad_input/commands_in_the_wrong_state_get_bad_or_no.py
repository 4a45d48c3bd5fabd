r = Raw(login=False)
# Not authenticated: the front refuses what needs a login.
for probe in [b"p1 SELECT INBOX", b"p2 EXAMINE INBOX", b"p3 FETCH 1 FLAGS",
              b"p4 LIST \"\" *", b"p5 APPEND INBOX {3}", b"p6 UID FETCH 1 FLAGS"]:
    tag = probe.split(b" ")[0]
    lines = r.cmd(probe)
    assert len(lines) == 1 and re.match(tag + rb" (NO|BAD) ", lines[0]), (probe, lines)
lines = r.cmd(b"L LOGIN joe secret")
assert lines[-1].startswith(b"L OK "), lines
# Authenticated, nothing selected: no message commands.
for probe in [b"a1 FETCH 1 FLAGS", b"a2 STORE 1 +FLAGS (\\Deleted)", b"a3 SEARCH ALL",
              b"a4 UID FETCH 1:* FLAGS", b"a5 UID STORE 1 +FLAGS (\\Deleted)",
              b"a6 UID SEARCH ALL", b"a7 COPY 1 INBOX", b"a8 EXPUNGE", b"a9 CLOSE",
              b"a10 UNSELECT", b"a11 UID EXPUNGE 1"]:
    tag = probe.split(b" ")[0]
    lines = r.cmd(probe)
    assert len(lines) == 1 and re.match(tag + rb" (NO|BAD) ", lines[0]), (probe, lines)
# Authenticated: no second login.
assert re.match(rb"b1 (NO|BAD) ", r.last(b"b1 LOGIN joe secret"))
assert re.match(rb"b2 (NO|BAD) ", r.last(b"b2 AUTHENTICATE PLAIN AGpvZQBzZWNyZXQ="))
# Selected read-only: no changes.
assert r.last(b"e EXAMINE INBOX").startswith(b"e OK [READ-ONLY]")
assert re.match(rb"e1 (NO|BAD) ", r.last(b"e1 STORE 1 +FLAGS (\\Deleted)"))
assert re.match(rb"e2 (NO|BAD) ", r.last(b"e2 EXPUNGE"))
# After CLOSE, nothing is selected again.
assert r.last(b"c CLOSE").startswith(b"c OK")
assert re.match(rb"c1 (NO|BAD) ", r.last(b"c1 FETCH 1 FLAGS"))
# And in the right state, the same commands work.
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
lines = r.cmd(b"g FETCH 1:* (UID)")
assert lines[-1].startswith(b"g OK") and len(lines) == 3, lines
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
