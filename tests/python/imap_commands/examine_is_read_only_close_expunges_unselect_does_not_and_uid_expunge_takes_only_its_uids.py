def present():
    """The Message-IDs of INBOX, by the files, sorted by number."""
    return sorted(by_msgid(), key=lambda k: int(k[2:-6]))

m = connect()
# EXAMINE: read-only, and it leaves \Recent alone (the files stay in new/).
typ, data = m.select("INBOX", readonly=True)
assert typ == "OK" and data == [b"8"], (typ, data)
assert "READ-ONLY" in m.untagged_responses, m.untagged_responses
assert take(m, "RECENT") == [b"8"]
assert len(os.listdir(os.path.join(MAILDIR, "new"))) == 8
before = sorted(files().values())
data = ok(m.fetch("1", "(BODY[])"))
assert data[0][1] == wire(by_msgid()["<m1@test>"]), data
assert b"\\Seen" not in data[0][0], data
data = ok(m.fetch("1:*", "(FLAGS)"))
assert not [d for d in data if b"\\Seen" in d], data
no(m.store("1", "+FLAGS", "(\\Seen)"))
no(m.expunge())
no(m.xatom("MOVE", "1", "Trash"))
assert sorted(files().values()) == before, "EXAMINE changed the Maildir"
# COPY out of a read-only mailbox is allowed.
ok(m.copy("1", "Trash"))
assert len(files("Trash")) == 1
ok(m.close())

# SELECT: read-write; the messages leave new/ and are \Recent in this session only.
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"8"], (typ, data)
assert "READ-WRITE" in m.untagged_responses, m.untagged_responses
assert take(m, "RECENT") == [b"8"]
assert not os.listdir(os.path.join(MAILDIR, "new"))
assert len(os.listdir(os.path.join(MAILDIR, "cur"))) == 8
ok(m.store("2,4", "+FLAGS", "(\\Deleted)"))
assert sorted(info(p) for p in files().values()) == [""] * 6 + ["T"] * 2, files()

# UNSELECT (RFC 3691) leaves \Deleted messages.
ok(m.unselect())
assert len(files()) == 8
# CLOSE of an EXAMINEd mailbox expunges nothing either.
ok(m.select("INBOX", readonly=True))
ok(m.close())
assert len(files()) == 8
# CLOSE of a SELECTed one removes them, silently (§6.4.2).
ok(m.select("INBOX"))
m.untagged_responses.clear()
ok(m.close())
assert "EXPUNGE" not in m.untagged_responses, m.untagged_responses
assert present() == ["<m1@test>", "<m3@test>", "<m5@test>", "<m6@test>", "<m7@test>", "<m8@test>"], present()
assert m.state == "AUTH"

# EXPUNGE: the \Deleted message goes, with its EXPUNGE response.
ok(m.select("INBOX"))
uids = uid_map(m)
assert uids == {1: "<m1@test>", 3: "<m3@test>", 5: "<m5@test>", 6: "<m6@test>", 7: "<m7@test>", 8: "<m8@test>"}, uids
ok(m.store("2", "+FLAGS", "(\\Deleted)"))
take(m, "EXPUNGE")
assert ok(m.expunge()) == [b"2"]
assert "<m3@test>" not in present()

# UID EXPUNGE (RFC 4315): of the \Deleted messages, only the UIDs named go.
ok(m.store("2:5", "+FLAGS", "(\\Deleted)"))   # UIDs 5 6 7 8
ok(m.uid("EXPUNGE", "6,8,1"))                 # 1 is not \Deleted: it stays
assert after_expunges([1, 5, 6, 7, 8], take(m, "EXPUNGE")) == [1, 5, 7], m.untagged_responses
assert present() == ["<m1@test>", "<m5@test>", "<m7@test>"], present()
assert sorted(info(p) for p in by_msgid().values()) == ["", "T", "T"]
assert ok(m.uid("SEARCH", "DELETED")) == [b"5 7"]
assert uid_map(m) == {1: "<m1@test>", 5: "<m5@test>", 7: "<m7@test>"}
# SELECT of a missing mailbox fails and leaves no mailbox selected.
no(m.select("nosuch"), b"[NONEXISTENT]")
assert m.state == "AUTH"
m.logout()
print("ok")
