m = connect()
ok(m.select("INBOX"))
paths = [by_msgid()["<f%d@test>" % i] for i in (1, 2, 3)]

def internaldate(path):
    return time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(os.stat(path).st_mtime))

# FLAGS, INTERNALDATE (the delivery time, the file's mtime) and RFC822.SIZE.
data = ok(m.fetch("1:*", "(FLAGS INTERNALDATE RFC822.SIZE)"))
assert len(data) == 3, data
for n, (item, path) in enumerate(zip(data, paths), 1):
    mo = re.fullmatch(rb'(\d+) \(FLAGS \(([^)]*)\) INTERNALDATE "([^"]+)" RFC822.SIZE (\d+)\)', item)
    assert mo, item
    assert int(mo.group(1)) == n and mo.group(2) == b"\\Recent", item
    assert mo.group(3).decode() == internaldate(path), (item, internaldate(path))
    body = ok(m.fetch(str(n), "(BODY.PEEK[])"))[0][1]
    assert body == wire(path), (body, wire(path))
    assert int(mo.group(4)) == len(body), (item, len(body))
assert ok(m.fetch("3", "(BODY.PEEK[])"))[0][1].endswith(b"last line\r\n")
assert all(info(p) == "" for p in files().values()), files()

# RFC822.HEADER: the header with its blank line, no \Seen.
header = wire(paths[0]).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
item = ok(m.fetch("1", "(RFC822.HEADER)"))[0]
assert item[0] == b"1 (RFC822.HEADER {%d}" % len(header) and item[1] == header, item
assert header.startswith(b"Return-Path: <alice@remote.example>\r\nDelivered-To: joe@example.com\r\n"), header

# BODY.PEEK[HEADER.FIELDS.NOT (...)]: every other field, folded lines kept whole.
item = ok(m.fetch("1", "(BODY.PEEK[HEADER.FIELDS.NOT (Received Return-Path DELIVERED-TO)])"))[0]
want, keep = b"", True
for l in header.split(b"\r\n\r\n")[0].split(b"\r\n"):
    if not l.startswith((b" ", b"\t")):
        keep = not re.match(rb"(?i)(received|return-path|delivered-to):", l)
    if keep:
        want += l + b"\r\n"
want += b"\r\n"
assert b"Received" in header and item[1] == want, (item, want)
assert item[1].startswith(b"From: Alice") and item[1].endswith(b"Subject: fetch one\r\n\r\n"), item
assert b"HEADER.FIELDS.NOT (RECEIVED RETURN-PATH DELIVERED-TO)]" in item[0].upper(), item
assert all(info(p) == "" for p in files().values()), "PEEK set a flag"

# BODY[TEXT]<0.10>: ten bytes of the text, and (not a PEEK) \Seen in the reply and the name.
m.untagged_responses.clear()
data = ok(m.fetch("1", "(BODY[TEXT]<0.10>)"))
item = data[0]
assert item[0].startswith(b"1 (") and b"BODY[TEXT]<0> {10}" in item[0], item
assert item[1] == b"body of f1", item
assert b"\\Seen" in data[1], data
assert info(by_msgid()["<f1@test>"]) == "S", files()
flags = ok(m.fetch("1", "(FLAGS)"))[0]
assert b"\\Seen" in flags, flags
# A partial past the end is empty; one across the end is cut there.
item = ok(m.fetch("2", "(BODY.PEEK[TEXT]<100000.10>)"))[0]
assert isinstance(item, tuple) and item[1] == b"" and item[0].endswith(b"BODY[TEXT]<100000> {0}"), item
text = wire(paths[1]).split(b"\r\n\r\n", 1)[1]
item = ok(m.fetch("2", "(BODY.PEEK[TEXT]<%d.100>)" % (len(text) - 4)))[0]
assert item[1] == text[-4:], (item, text)
assert info(by_msgid()["<f2@test>"]) == "", files()
m.logout()
print("ok")
