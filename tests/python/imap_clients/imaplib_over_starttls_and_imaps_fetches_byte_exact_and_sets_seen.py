want = sorted(files().values())
assert len(want) == 4, len(want)
def seen():
    return [n for n in files() if n.startswith("cur/") and n.endswith(":2,S")]
def fetch_all(m, item):
    got = []
    for n in range(1, len(want) + 1):
        typ, data = m.fetch(str(n), "(%s)" % item)
        assert typ == "OK", (typ, data)
        got.append(data[0][1])
    assert sorted(got) == want, [g[:60] for g in got]

# STARTTLS: BODY.PEEK[] leaves the flags alone; STORE +FLAGS (\Seen) on message 1 gives
# its file the info ":2,S" (in cur/).
m = login(False)
typ, data = m.select("INBOX")
assert typ == "OK" and int(data[0]) == len(want), (typ, data)
fetch_all(m, "BODY.PEEK[]")
typ, data = m.store("1", "+FLAGS", "(\\Seen)")
assert typ == "OK" and b"\\Seen" in data[0], (typ, data)
typ, data = m.logout()
assert typ == "BYE", (typ, data)
assert len(seen()) == 1, sorted(files())
print("ok starttls")

# IMAPS: FETCH BODY[] sets \Seen on every message it reads.
m = login(True)
typ, data = m.select("INBOX")
assert typ == "OK" and int(data[0]) == len(want), (typ, data)
fetch_all(m, "BODY[]")
typ, data = m.logout()
assert typ == "BYE", (typ, data)
assert len(seen()) == len(want), sorted(files())
# Flags change names, never contents.
assert sorted(files().values()) == want
print("ok imaps")
