a = Raw()
b = Raw()
assert b"CONDSTORE" in a.greeting and b"LIST-STATUS" in a.greeting and b"ESEARCH" in a.greeting, a.greeting
r = a.cmd(b"e1 ENABLE CONDSTORE")
assert r[0] == b"* ENABLED CONDSTORE\r\n", r
r = a.cmd(b"s1 SELECT INBOX")
hms = [l for l in r if b"HIGHESTMODSEQ" in l]
assert hms, r
high = int(re.search(rb"HIGHESTMODSEQ (\d+)", hms[0]).group(1))
r = a.cmd(b"f1 FETCH 1:* (UID MODSEQ)")
seqs = {int(m.group(1)): int(m.group(2)) for m in (re.search(rb"UID (\d+) MODSEQ \((\d+)\)", l) for l in r) if m}
assert len(seqs) == 3 and max(seqs.values()) == high, (r, high)

# A keyword: new keywords are announced, kept in the file name, and searchable.
r = a.cmd(b"t1 STORE 2 +FLAGS ($Important)")
assert r[0].startswith(b"* FLAGS (") and b"$Important" in r[0], r
fetch = [l for l in r if b"FETCH" in l][0]
assert b"$Important" in fetch and b"MODSEQ (" in fetch, r
new_mod = int(re.search(rb"MODSEQ \((\d+)\)", fetch).group(1))
assert new_mod > high, (new_mod, high)
assert open(os.path.join(MAILDIR, "rqmail-keywords")).read() == "$Important\n"
assert any(n.endswith(":2,a") for n in os.listdir(os.path.join(MAILDIR, "cur"))), os.listdir(os.path.join(MAILDIR, "cur"))
r = a.cmd(b"k1 SEARCH KEYWORD $important")
assert r[0] == b"* SEARCH 2\r\n", r
r = a.cmd(b"k2 SEARCH UNKEYWORD $Important")
assert r[0] == b"* SEARCH 1 3\r\n", r
r = a.cmd(b"k3 SEARCH MODSEQ %d" % (high + 1))
assert r[0] == b"* SEARCH 2 (MODSEQ %d)\r\n" % new_mod, r
# ESEARCH (RFC 4731): one line with what was asked, in UID or sequence numbers.
r = a.cmd(b"e2 UID SEARCH RETURN (MIN MAX COUNT ALL) ALL")
uids3 = sorted(seqs)
assert r[0] == b'* ESEARCH (TAG "e2") UID MIN %d MAX %d COUNT 3 ALL %d:%d\r\n' % (uids3[0], uids3[2], uids3[0], uids3[2]), r
r = a.cmd(b"e3 SEARCH RETURN () UNKEYWORD $Important")
assert r[0] == b'* ESEARCH (TAG "e3") ALL 1,3\r\n', r
r = a.cmd(b"e4 SEARCH RETURN (COUNT MIN) SUBJECT nothing-like-this")
assert r[0] == b'* ESEARCH (TAG "e4") COUNT 0\r\n', r
r = a.cmd(b"e5 SEARCH RETURN (MAX) MODSEQ %d" % (high + 1))
assert r[0] == b'* ESEARCH (TAG "e5") MAX 2 MODSEQ %d\r\n' % new_mod, r
assert a.cmd(b"e6 SEARCH RETURN (SAVE) ALL")[-1].startswith(b"e6 BAD"), "SAVE is not offered"
# With only MIN (or MAX), MODSEQ is that message's; with COUNT or ALL, the highest matched.
r = a.cmd(b"e7 SEARCH RETURN (MIN) MODSEQ 1")
assert r[0] == b'* ESEARCH (TAG "e7") MIN 1 MODSEQ %d\r\n' % seqs[uids3[0]], (r, seqs)
r = a.cmd(b"e8 SEARCH RETURN (MIN COUNT) MODSEQ 1")
assert r[0] == b'* ESEARCH (TAG "e8") MIN 1 COUNT 3 MODSEQ %d\r\n' % new_mod, r

# Only what changed since a mod-sequence.
r = a.cmd(b"f2 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % high)
assert len([l for l in r if l.startswith(b"* ")]) == 1 and b"MODSEQ" in r[0], r

# Conditional STORE: the stale one is refused with MODIFIED.
r = a.cmd(b"t2 UID STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Flagged)" % high)
uids = sorted(seqs)
assert r[-1].startswith(b"t2 OK [MODIFIED %d]" % uids[1]), r
flagged = a.cmd(b"f3 SEARCH FLAGGED")
assert flagged[0] == b"* SEARCH 1 3\r\n", flagged

# The other session hears of the changes with the new mod-sequences once it enables CONDSTORE.
r = b.cmd(b"b1 SELECT INBOX (CONDSTORE)")
assert any(b"HIGHESTMODSEQ" in l for l in r), r
r = a.cmd(b"t3 STORE 3 -FLAGS (\\Flagged)")
r = b.cmd(b"b2 NOOP")
assert any(l.startswith(b"* 3 FETCH") and b"MODSEQ (" in l for l in r), r

# STATUS and LIST-STATUS with HIGHESTMODSEQ; names in modified UTF-7.
r = a.cmd(b"c1 CREATE \"Entw&APw-rfe\"")
assert r[-1].startswith(b"c1 OK"), r
assert os.path.isdir(os.path.join(MAILDIR, ".Entw&APw-rfe"))
r = a.cmd(b"c2 CREATE \"bad&name\"")
assert r[-1].startswith(b"c2 NO"), r
r = a.cmd(b'c3 CREATE "caf\xc3\xa9"')
assert r[-1].startswith(b"c3 OK") and os.path.isdir(os.path.join(MAILDIR, ".caf&AOk-")), r
r = a.cmd(b'l1 LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN HIGHESTMODSEQ))')
text = b"".join(r)
assert b'* LIST (\\HasNoChildren) "." "Entw&APw-rfe"' in text, text
assert b'* STATUS "Entw&APw-rfe" (MESSAGES 0 UNSEEN 0 HIGHESTMODSEQ' in text, text
assert re.search(rb'\* STATUS "INBOX" \(MESSAGES 3 UNSEEN 3 HIGHESTMODSEQ \d+\)', text), text
r = a.cmd(b'l2 LIST (SUBSCRIBED) "" "*"')
assert all(b"\\Subscribed" in l for l in r if l.startswith(b"* LIST")), r
assert any(b'"Sent"' in l for l in r), r

# RENAME INBOX moves its messages into the new folder and leaves INBOX empty.
a.cmd(b"u1 UNSELECT")
r = a.cmd(b"r1 RENAME INBOX Old")
assert r[-1].startswith(b"r1 OK"), r
r = a.cmd(b"r2 STATUS INBOX (MESSAGES)")
assert r[0] == b'* STATUS "INBOX" (MESSAGES 0)\r\n', r
r = a.cmd(b"r3 STATUS Old (MESSAGES)")
assert r[0] == b'* STATUS "Old" (MESSAGES 3)\r\n', r
print("ok")
