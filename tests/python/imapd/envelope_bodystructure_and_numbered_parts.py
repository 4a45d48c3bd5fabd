r = Raw()
assert r.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
t = b"".join(r.cmd(b"f1 FETCH 1 (ENVELOPE)"))
assert b'ENVELOPE ("Mon, 2 Feb 2026 10:00:00 +0000" "=?utf-8?q?caf=C3=A9?= report" (("Alice A." NIL "alice" "remote.example"))' in t, t
assert b'(NIL NIL "team" NIL)(NIL NIL "carol" "x.example")(NIL NIL "dave" "y.example")(NIL NIL NIL NIL)' in t, t
assert t.rstrip().endswith(b'NIL NIL NIL "<m1@remote.example>"))\r\nf1 OK FETCH completed'), t
t = b"".join(r.cmd(b"f2 FETCH 1 (BODYSTRUCTURE)"))
assert b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 15 0' in t, t
assert b'"ALTERNATIVE"' in t and b'"MIXED"' in t, t
assert b'("APPLICATION" "PDF" ("NAME" "r.pdf") NIL NIL "BASE64" 12' in t, t
assert b'("ATTACHMENT" ("FILENAME" "r.pdf"))' in t, t
assert b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT"' in t and b'"inner"' in t, t
t = b"".join(r.cmd(b"f3 FETCH 1 (BODY)"))
assert b"BODY ((" in t and b"ATTACHMENT" not in t, t
# Numbered parts, their MIME headers, the enclosed message's header and text.
def part(spec):
    lines = r.cmd(b"p FETCH 1 (BODY.PEEK[" + spec + b"])")
    t = b"".join(lines)
    m = re.search(rb"\{(\d+)\}\r\n", t)
    assert m, t
    return t[m.end():m.end() + int(m.group(1))]
v = part(b"1.1"); assert v == b"caf=C3=A9 plain", v
v = part(b"1.2"); assert v == b"<p>caf\xc3\xa9</p>", (b"1.2", v)
v = part(b"1.1.MIME"); assert v == b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", (b"1.1.MIME", v)
v = part(b"2"); assert v == b"JVBERi0xLjQK", (b"2", v)
v = part(b"3.HEADER"); assert v == b"From: Eve <eve@z.example>\r\nSubject: inner\r\n\r\n", (b"3.HEADER", v)
v = part(b"3.TEXT"); assert v == b"inner body", (b"3.TEXT", v)
v = part(b"3.HEADER.FIELDS (Subject)"); assert v == b"Subject: inner\r\n\r\n", (b"3.HEADER.FIELDS (Subject)", v)
v = part(b"HEADER.FIELDS.NOT (Return-Path Delivered-To Received To From Subject Date Message-ID MIME-Version)"); assert v == b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n', (b"HEADER.FIELDS.NOT (Return-Path Delivered-To Received To From Subject Date Message-ID MIME-Version)", v)
t = b"".join(r.cmd(b"p2 FETCH 1 (BODY.PEEK[9])"))
assert b"BODY[9] NIL" in t and t.endswith(b"p2 OK FETCH completed\r\n"), t
assert r.cmd(b"p3 FETCH 1 (BODY[0])")[-1].startswith(b"p3 BAD"), "part 0"
# Reading a part sets \Seen; BODY.PEEK did not.
assert b"\\Seen" not in b"".join(r.cmd(b"p4 FETCH 1 (FLAGS)"))
t = b"".join(r.cmd(b"p5 FETCH 1 (BODY[1.2]<1.3>)"))
assert b"BODY[1.2]<1> {3}\r\np>c" in t and b"\\Seen" in t, t
# imaplib's own parser accepts the structures.
m = connect()
ok(m.select("INBOX"))
typ, data = m.fetch("1", "(ENVELOPE BODYSTRUCTURE FLAGS)")
assert typ == "OK", data
print("ok")
