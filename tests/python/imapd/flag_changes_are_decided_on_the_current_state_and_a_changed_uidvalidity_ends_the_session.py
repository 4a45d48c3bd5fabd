a = Raw(); b = Raw()
assert a.cmd(b"a1 SELECT INBOX")[-1].startswith(b"a1 OK")
assert b.cmd(b"b1 SELECT INBOX")[-1].startswith(b"b1 OK")
# ENABLE while selected says the HIGHESTMODSEQ the client was not told (RFC 7162 3.1).
r = a.cmd(b"a2 ENABLE CONDSTORE")
assert any(l.startswith(b"* OK [HIGHESTMODSEQ ") for l in r), r
m = re.search(rb"MODSEQ \((\d+)\)", b"".join(a.cmd(b"a3 FETCH 1 (MODSEQ)")))
seen_modseq = int(m.group(1))
# b flags message 1 behind a's back.
assert b.cmd(b"b2 STORE 1 +FLAGS.SILENT (\\Flagged)")[-1].startswith(b"b2 OK")
# a's conditional STORE tests the mod-sequence of now, not the one a last saw.
r = a.cmd(b"a4 STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Answered)" % seen_modseq)
assert r[-1].startswith(b"a4 OK [MODIFIED 1]"), r
assert any(b"\\Flagged" in l and b"UID 1 " in l for l in r if l.startswith(b"* 1 FETCH")), r
assert all(b"\\Answered" not in l for l in r), r
# A non-conditional +FLAGS keeps b's \Flagged; with CONDSTORE the FETCH has UID and MODSEQ.
r = a.cmd(b"a5 STORE 1 +FLAGS (\\Seen)")
fetch = [l for l in r if l.startswith(b"* 1 FETCH")]
assert len(fetch) == 1 and b"\\Flagged" in fetch[0] and b"\\Seen" in fetch[0], r
assert b"UID 1 " in fetch[0] and b"MODSEQ (" in fetch[0], fetch
assert any(p.endswith(":2,FS") for p in files().values()), files()
# Reading a body sets \Seen, and the reply also tells what another session set meanwhile,
# even when \Seen was among it.
assert b.cmd(b"b6 STORE 2 +FLAGS.SILENT (\Flagged)")[-1].startswith(b"b6 OK")
r = b"".join(a.cmd(b"a12 FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY[1])"))
assert r.count(b"* 2 FETCH") == 1 and b"FLAGS (\\Flagged \\Seen" in r, r
assert b.cmd(b"b7 STORE 3 +FLAGS.SILENT (\Seen \Answered)")[-1].startswith(b"b7 OK")
r = b"".join(a.cmd(b"a13 FETCH 3 (BODY[1])"))
assert r.count(b"* 3 FETCH") == 1 and b"FLAGS (\\Answered \\Seen" in r and b"MODSEQ (" in r, r
assert b"\\Answered" not in b"".join(a.cmd(b"a14 NOOP")), "told twice"
assert b.cmd(b"b8 STORE 2:3 -FLAGS.SILENT (\Flagged \Answered \Seen)")[-1].startswith(b"b8 OK")
assert a.cmd(b"a15 NOOP")[-1].startswith(b"a15 OK")
# b flags message 2; a's quiet STORE on message 3 must not hide that from a's next NOOP.
assert b.cmd(b"b3 STORE 2 +FLAGS.SILENT (\\Draft)")[-1].startswith(b"b3 OK")
assert a.cmd(b"a6 STORE 3 +FLAGS.SILENT (\\Seen)")[-1].startswith(b"a6 OK")
r = a.cmd(b"a7 NOOP")
assert any(l.startswith(b"* 2 FETCH") and b"\\Draft" in l for l in r), r
# Both sessions expunge message 3: the quota counts it once.
assert a.cmd(b"a8 STORE 3 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"a8 OK")
assert b.cmd(b"b4 NOOP")[-1].startswith(b"b4 OK")
r = a.cmd(b"a9 EXPUNGE")
assert r[-1].startswith(b"a9 OK") and b"* 3 EXPUNGE\r\n" in r, r
r = b.cmd(b"b5 EXPUNGE")
assert r[-1].startswith(b"b5 OK") and b"* 3 EXPUNGE\r\n" in r, r
size = open(os.path.join(MAILDIR, "maildirsize")).read()
assert size.startswith("5000000S,100C\n"), size
assert len([l for l in size.splitlines() if l.startswith("-")]) == 1, (size, r, files())
# Another session deletes the folder and makes it again: a's UIDs mean nothing now.
c = connect()
ok(c.create("Box"))
assert a.cmd(b"a10 SELECT Box")[-1].startswith(b"a10 OK")
ok(c.delete("Box")); ok(c.create("Box"))
ok(c.append("Box", None, None, b"Subject: new\r\n\r\nnew\r\n"))
a.send(b"a11 NOOP\r\n")
lines = a.rest()
assert len(lines) == 1 and lines[0].startswith(b"* BYE ") and b"UIDVALIDITY" in lines[0], lines
c.logout()
print("ok")
