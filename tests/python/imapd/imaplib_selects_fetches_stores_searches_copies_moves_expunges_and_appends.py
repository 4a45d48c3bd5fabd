m = connect()
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"3"], (typ, data)
assert m.untagged_responses.get("RECENT") == [b"3"], m.untagged_responses
assert not os.listdir(os.path.join(MAILDIR, "new")), "SELECT moves new/ to cur/"
uids = ok(m.uid("SEARCH", "ALL"))[0].split()
assert uids == [b"1", b"2", b"3"], uids

# FETCH: byte-exact BODY[], sizes, header fields, partials.
data = ok(m.fetch("1:3", "(UID RFC822.SIZE BODY.PEEK[])"))
by_unique = files()
bodies = {}
for item in data[::2]:
    meta, body = item
    uid = int(re.search(rb"UID (\d+)", meta).group(1))
    size = int(re.search(rb"RFC822.SIZE (\d+)", meta).group(1))
    bodies[uid] = body
    assert size == len(body), (size, len(body))
wires = sorted(wire(p) for p in by_unique.values())
assert sorted(bodies.values()) == wires, (bodies, wires)
assert bodies[2].endswith(b"no newline at the end\r\n"), bodies[2]
assert all(p.endswith(":2,") for p in files().values()), files()
data = ok(m.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
assert data[0][1] == b"Subject: two\r\n  folded\r\n\r\n", data
data = ok(m.fetch("1", "(BODY.PEEK[TEXT]<5.3>)"))
assert data[0][0].endswith(b"BODY[TEXT]<5> {3}") and data[0][1] == b"one", data
data = ok(m.fetch("1", "(BODY.PEEK[HEADER])"))
assert data[0][1].startswith(b"Return-Path: ") and data[0][1].endswith(b"Subject: one\r\n\r\n"), data

# STORE renames the file; BODY[] (not PEEK) sets \Seen.
ok(m.store("2", "+FLAGS", "(\\Flagged)"))
f = files()
two = [p for p in f.values() if b"Subject: two" in open(p, "rb").read()][0]
assert two.endswith(":2,F"), two
ok(m.fetch("2", "(BODY[])"))
f = files()
two = [p for p in f.values() if b"Subject: two" in open(p, "rb").read()][0]
assert two.endswith(":2,FS"), two
ok(m.store("2", "-FLAGS.SILENT", "(\\Flagged)"))
assert [p for p in files().values() if p.endswith(":2,S")], files()

# SEARCH.
assert ok(m.search(None, "SEEN")) == [b"2"]
assert ok(m.search(None, "UNSEEN")) == [b"1 3"]
assert ok(m.search(None, "SUBJECT", "three")) == [b"3"]
assert ok(m.search(None, "FROM", "carol")) == [b"2"]
assert ok(m.search(None, "BODY", "needle")) == [b"3"]
assert ok(m.search(None, "OR", "SUBJECT", "one", "SUBJECT", "three")) == [b"1 3"]
assert ok(m.search(None, "NOT", "(SEEN)")) == [b"1 3"]
assert ok(m.search(None, "2:*")) == [b"2 3"]
assert ok(m.search(None, "LARGER", "1", "SMALLER", "100000")) == [b"1 2 3"]
assert ok(m.search(None, "SINCE", "1-Jan-2000", "BEFORE", "1-Jan-2100")) == [b"1 2 3"]
assert ok(m.search(None, "ON", "1-Jan-2000")) == [b""]

# CREATE a hierarchy, COPY and MOVE into it.
ok(m.create("Lists.rust"))
lists = ok(m.list('""', "*"))
assert b'(\\HasChildren) "." "Lists"' in lists, lists
assert b'(\\HasNoChildren) "." "Lists.rust"' in lists, lists
assert b'(\\HasNoChildren \\Sent) "." "Sent"' in lists, lists
assert not any(b"Lists.rust" in x for x in ok(m.list('""', "%")))
typ, data = m._simple_command("UID", "COPY", "1", "Lists.rust")
assert typ == "OK" and b"[COPYUID " in data[0] and data[0].split()[2:4] == [b"1", b"1]"], data
assert len(files("Lists.rust")) == 1
typ, data = m._simple_command("UID", "MOVE", "3", "Lists.rust")
assert typ == "OK", (typ, data)
assert len(files("Lists.rust")) == 2
assert len(files()) == 2
st = ok(m.status("Lists.rust", "(MESSAGES UIDNEXT UNSEEN)"))
assert st == [b'"Lists.rust" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)'], st
typ, data = m.copy("1", "Nowhere")
assert typ == "NO" and b"TRYCREATE" in data[0], data

# EXPUNGE removes the file.
ok(m.store("1", "+FLAGS", "(\\Deleted)"))
assert [p for p in files().values() if p.endswith(":2,T")]
assert m.untagged_responses.pop("EXPUNGE") == [b"3"], "MOVE expunged message 3"
typ, data = m.expunge()
assert typ == "OK" and data == [b"1"], data
assert len(files()) == 1

# APPEND with flags and a date.
typ, data = m.append("INBOX", "(\\Seen \\Answered)", '"01-Feb-2020 10:00:00 +0100"', b"Subject: appended\r\n\r\nhi\r\n")
assert typ == "OK" and b"[APPENDUID " in data[0], data
ok(m.noop())
appended = [p for p in files().values() if b"appended" in open(p, "rb").read()]
assert len(appended) == 1 and appended[0].endswith(":2,RS"), appended
assert int(os.stat(appended[0]).st_mtime) == 1580547600
assert open(appended[0], "rb").read() == b"Subject: appended\n\nhi\n"  # stored with LF, as delivered mail
uids_before = ok(m.uid("FETCH", "1:*", "(UID FLAGS)"))
m.logout()

# UIDs are stable across reconnects.
m = connect()
ok(m.select("INBOX"))
uids_after = ok(m.uid("FETCH", "1:*", "(UID FLAGS)"))
assert [re.search(rb"UID \d+", x).group(0) for x in uids_after] == [re.search(rb"UID \d+", x).group(0) for x in uids_before], (uids_before, uids_after)
assert re.search(rb"UID 4", uids_after[-1]), uids_after
ok(m.delete("Lists.rust"))
assert not os.path.exists(os.path.join(MAILDIR, ".Lists.rust"))
m.logout()
print("ok")
