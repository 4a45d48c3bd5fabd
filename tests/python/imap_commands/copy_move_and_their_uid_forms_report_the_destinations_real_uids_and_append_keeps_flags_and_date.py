m = connect()
ok(m.create("Dest"))
# APPEND with flags (a keyword too) and an internal date.
typ, data = m.append("Dest", r"(\Seen \Draft $Label)", '"14-Jul-2021 08:30:00 +0200"', message("app", b"appended"))
assert typ == "OK", (typ, data)
mo = re.match(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
assert mo, data
dest_validity = int(mo.group(1))
assert status(m, "Dest")["UIDVALIDITY"] == dest_validity
appended = by_msgid("Dest")["<app@test>"]
assert info(appended) == "DSa", appended
assert open(os.path.join(folder_dir("Dest"), "rqmail-keywords")).read() == "$Label\n"
assert int(os.stat(appended).st_mtime) == calendar.timegm((2021, 7, 14, 6, 30, 0))
assert open(appended, "rb").read() == message("app", b"appended").replace(b"\r\n", b"\n")
ok(m.select("Dest"))
data = ok(m.uid("FETCH", mo.group(2).decode(), "(FLAGS INTERNALDATE)"))
assert b'INTERNALDATE "14-Jul-2021 06:30:00 +0000"' in data[0], data
for f in (b"\\Seen", b"\\Draft", b"$Label"):
    assert f in data[0], data
no(m.append("Nowhere", None, None, message("x", b"x")), b"[TRYCREATE]")

def check_copyuid(code, src_map, dest):
    """The COPYUID code names the destination's real UIDs, message for message."""
    validity, src, dst = copyuid(code)
    assert validity == status(m, dest)["UIDVALIDITY"], (code, dest)
    assert len(src) == len(dst), code
    m2 = connect()
    ok(m2.select(dest, readonly=True))
    dest_map = uid_map(m2)
    m2.logout()
    for s_uid, d_uid in zip(src, dst):
        assert dest_map[d_uid] == src_map[s_uid], (code, s_uid, d_uid, dest_map, src_map)
    return dst

ok(m.select("INBOX"))
inbox = uid_map(m)
assert inbox == {i: "<c%d@test>" % i for i in range(1, 7)}, inbox
ok(m.store("1", "+FLAGS", "(\\Flagged)"))

# COPY by sequence number: the source stays, the flags come along.
typ, data = m.copy("1:2", "Dest")
assert typ == "OK", (typ, data)
got = check_copyuid(data[0], inbox, "Dest")
assert len(files()) == 6 and len(files("Dest")) == 3
assert info(by_msgid("Dest")["<c1@test>"]) == "F"

# UID COPY of a set written out of order.
typ, data = m._simple_command("UID", "COPY", "5,3", "Dest")
assert typ == "OK", (typ, data)
got += check_copyuid(data[0], inbox, "Dest")
assert sorted(got) == sorted(set(got)) and len(files("Dest")) == 5
no(m.copy("1", "Nowhere"), b"[TRYCREATE]")

# MOVE by sequence number: COPYUID in an untagged OK, then EXPUNGE.
m.untagged_responses.clear()
typ, data = m.xatom("MOVE", "1", "Dest")
assert typ == "OK", (typ, data)
code = take(m, "COPYUID")
assert code, m.untagged_responses
got += check_copyuid(b"COPYUID " + code[0], inbox, "Dest")
assert take(m, "EXPUNGE") == [b"1"]
assert "<c1@test>" not in by_msgid() and "<c1@test>" in by_msgid("Dest")
assert sorted(by_msgid()) == ["<c2@test>", "<c3@test>", "<c4@test>", "<c5@test>", "<c6@test>"]

# UID MOVE of a range written backwards.
typ, data = m._simple_command("UID", "MOVE", "6:4", "Dest")
assert typ == "OK", (typ, data)
code = take(m, "COPYUID")
_, src, _ = copyuid(b"COPYUID " + code[0])
assert sorted(src) == [4, 5, 6], code
got += check_copyuid(b"COPYUID " + code[0], inbox, "Dest")
assert after_expunges([2, 3, 4, 5, 6], take(m, "EXPUNGE")) == [2, 3]
assert sorted(by_msgid()) == ["<c2@test>", "<c3@test>"], by_msgid()
assert uid_map(m) == {2: "<c2@test>", 3: "<c3@test>"}

# The destination: every message once, each UID once, UIDNEXT past them all.
ok(m.select("Dest"))
dest = uid_map(m)
assert sorted(dest.values()) == sorted(["<app@test>", "<c1@test>", "<c2@test>", "<c3@test>", "<c5@test>", "<c1@test>", "<c4@test>", "<c5@test>", "<c6@test>"]), dest
assert sorted(by_msgid("Dest")) == sorted(set(dest.values()))
st = status(m, "Dest")
assert st["MESSAGES"] == 9 == len(files("Dest")) and st["UIDNEXT"] > max(dest), (st, dest)
assert sorted(got) == sorted(set(got)), got
m.logout()
print("ok")
