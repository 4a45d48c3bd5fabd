m = connect()
# CREATE a.b.c makes the parents (RFC 3501 §6.3.3), each a Maildir++ folder.
ok(m.create("a.b.c"))
for name in ("a", "a.b", "a.b.c"):
    d = folder_dir(name)
    for sub in ("cur", "new", "tmp"):
        assert os.path.isdir(os.path.join(d, sub)), (d, sub)
    assert os.path.exists(os.path.join(d, "maildirfolder")), d
no(m.create("a.b"), b"[ALREADYEXISTS]")
no(m.create("INBOX"), b"[ALREADYEXISTS]")

# LIST: * crosses the separator, % does not; the reference is prefixed to the pattern.
every = listing(m, '""', "*")
assert {"INBOX", "a", "a.b", "a.b.c", "Sent", "Trash", "Drafts", "Junk", "Archive"} <= set(every), every
assert every["a"] == {"\\HasChildren"} and every["a.b"] == {"\\HasChildren"}, every
assert every["a.b.c"] == {"\\HasNoChildren"}, every
top = listing(m, '""', "%")
assert "a" in top and "INBOX" in top and not [n for n in top if "." in n], top
assert set(listing(m, "a.", "%")) == {"a.b"}
assert set(listing(m, "a.", "*")) == {"a.b", "a.b.c"}
assert set(listing(m, '""', "a.%.c")) == {"a.b.c"}
assert set(listing(m, '""', "inbox")) == {"INBOX"}, "INBOX matches in any case"
assert listing(m, '""', "nosuch*") == {}
# An empty pattern asks for the separator (§6.3.8).
typ, data = m.list('""', '""')
assert typ == "OK" and data == [b'(\\Noselect) "." ""'], data

# SUBSCRIBE / UNSUBSCRIBE / LSUB, kept in the Maildir's subscriptions file.
ok(m.subscribe("a.b"))
ok(m.subscribe("a.b.c"))
subs = open(os.path.join(MAILDIR, "subscriptions")).read().split()
assert "a.b" in subs and "a.b.c" in subs and "INBOX" in subs, subs
assert set(listing(m, "a.", "*", "LSUB")) == {"a.b", "a.b.c"}
ok(m.unsubscribe("a.b"))
assert set(listing(m, "a.", "*", "LSUB")) == {"a.b.c"}
assert "a.b" not in open(os.path.join(MAILDIR, "subscriptions")).read().split()
assert "a.b" in listing(m, "a.", "*"), "unsubscribing does not delete"

# STATUS: every item, against SELECT and the files.
st = status(m, "INBOX")
assert st["MESSAGES"] == 2 and st["RECENT"] == 2 and st["UNSEEN"] == 2, st
assert len(files()) == 2
ok(m.select("INBOX"))
assert int(take(m, "UIDVALIDITY")[0]) == st["UIDVALIDITY"]
assert int(take(m, "UIDNEXT")[0]) == st["UIDNEXT"] == 3, st
ok(m.store("1", "+FLAGS", "(\\Seen)"))
ok(m.close())
st = status(m, "INBOX")
assert st["MESSAGES"] == 2 and st["RECENT"] == 0 and st["UNSEEN"] == 1, st
assert not os.listdir(os.path.join(MAILDIR, "new")), "SELECT took the messages out of new/"
no(m.status("nosuch", "(MESSAGES)"), b"[NONEXISTENT]")

# DELETE of a folder holding messages: allowed, and the messages go with it.
ok(m.create("Full"))
for i in range(2):
    ok(m.append("Full", None, None, message("full%d" % i, b"full")))
assert len(files("Full")) == 2
old_full = status(m, "Full")
ok(m.delete("Full"))
assert not os.path.exists(folder_dir("Full"))
assert "Full" not in listing(m, '""', "*")
no(m.select("Full"), b"[NONEXISTENT]")
no(m.delete("Full"), b"[NONEXISTENT]")
no(m.delete("INBOX"))
# A folder made again under the name is a new, empty one.
ok(m.create("Full"))
assert status(m, "Full")["MESSAGES"] == 0
assert not files("Full")

# DELETE of a folder with inferiors (§6.3.4): either refused, or its messages go and the
# name stays as \Noselect while the inferiors keep theirs.
ok(m.append("a", None, None, message("a1", b"in a")))
ok(m.append("a.b", None, None, message("ab1", b"in a.b")))
ok(m.append("a.b", None, None, message("ab2", b"in a.b")))
typ, data = m.delete("a")
if typ == "OK":
    print("DELETE of a folder with inferiors: OK, the name stays as \\Noselect")
    assert not os.path.exists(folder_dir("a")), "the messages of a are gone"
    lst = listing(m, '""', "a*")
    assert lst["a"] == {"\\Noselect", "\\HasChildren"}, lst
    assert lst["a.b"] == {"\\HasChildren"} and lst["a.b.c"] == {"\\HasNoChildren"}, lst
    no(m.select("a"))
    no(m.status("a", "(MESSAGES)"))
    # "It is an error to attempt to delete a name that has inferior hierarchical names
    # and also has the \Noselect attribute."
    no(m.delete("a"))
    # Made again, it is selectable and empty.
    ok(m.create("a"))
    assert listing(m, '""', "a")["a"] == {"\\HasChildren"}
    assert status(m, "a")["MESSAGES"] == 0
else:
    print("DELETE of a folder with inferiors: refused")
    assert typ == "NO", (typ, data)
    assert len(files("a")) == 1
    assert "\\Noselect" not in listing(m, '""', "a")["a"]
assert status(m, "a.b")["MESSAGES"] == 2 and len(files("a.b")) == 2
assert os.path.isdir(folder_dir("a.b.c"))

# RENAME of a folder with inferiors: they move with it, with their messages and UIDs.
ok(m.create("x.y.z"))
for folder, n in (("x", 2), ("x.y", 3), ("x.y.z", 1)):
    for i in range(n):
        ok(m.append(folder, None, None, message("%s-%d" % (folder, i), b"rename me")))
before = {}
for folder in ("x", "x.y", "x.y.z"):
    ok(m.select(folder))
    ok(m.store("1", "+FLAGS", "(\\Flagged)"))
    before[folder] = (status(m, folder), uid_map(m), sorted(files(folder)))
ok(m.close())
ok(m.rename("x", "p.w"))
lst = listing(m, '""', "*")
assert not [n for n in lst if n == "x" or n.startswith("x.")], lst
assert {"p", "p.w", "p.w.y", "p.w.y.z"} <= set(lst), lst
assert lst["p.w.y.z"] == {"\\HasNoChildren"} and lst["p.w"] == {"\\HasChildren"}, lst
for folder in ("x", "x.y", "x.y.z"):
    assert not os.path.exists(folder_dir(folder)), folder
    new = "p.w" + folder[1:]
    old_status, old_uids, old_files = before[folder]
    st = status(m, new)
    assert st["MESSAGES"] == old_status["MESSAGES"], (folder, st, old_status)
    # The files moved as they were (flags included).
    assert sorted(files(new)) == old_files, (folder, files(new))
    ok(m.select(new))
    uids = uid_map(m)
    assert sorted(uids.values()) == sorted(old_uids.values()), (uids, old_uids)
    # What a client caches under (name, UIDVALIDITY, UID) must still be right.
    if st["UIDVALIDITY"] == old_status["UIDVALIDITY"]:
        assert uids == old_uids, (folder, uids, old_uids)
        print("RENAME kept UIDVALIDITY and UIDs of", folder)
    assert st["UIDNEXT"] > max(uids), (st, uids)
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Flagged" in data[0], data
ok(m.close())
no(m.rename("nosuch", "other"), b"[NONEXISTENT]")
no(m.rename("a.b", "p.w"), b"[ALREADYEXISTS]")
m.logout()
print("ok")
