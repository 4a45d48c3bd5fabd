m = connect()
caps = ok(m.capability())[0].split()
for c in [b"IMAP4rev1", b"LITERAL+", b"UIDPLUS", b"MOVE", b"IDLE", b"NAMESPACE", b"ID",
          b"ENABLE", b"UNSELECT", b"CHILDREN", b"CONDSTORE"]:
    assert c in caps, (c, caps)
# Logged in: no more login capabilities.
assert not [c for c in caps if c.startswith(b"AUTH=") or c in (b"STARTTLS", b"LOGINDISABLED")], caps
assert ok(m.noop()) == [b"NOOP completed"]

# ID (RFC 2971): the server's own list, whatever the client says.
ok(m.xatom("ID", '("name" "imaplib" "version" "3")'))
assert take(m, "ID") == [b'("name" "rqmail")'], m.untagged_responses
ok(m.xatom("ID", "NIL"))
assert take(m, "ID") == [b'("name" "rqmail")']

# NAMESPACE (RFC 2342): one personal namespace, "." as the separator.
assert ok(m.namespace()) == [b'(("" ".")) NIL NIL']

# ENABLE (RFC 5161): only what is known is enabled; CONDSTORE then shows in SELECT.
ok(m.enable("X-NOSUCH"))
assert take(m, "ENABLED") == [b""], m.untagged_responses
ok(m.enable("CONDSTORE"))
assert take(m, "ENABLED") == [b"CONDSTORE"], m.untagged_responses
ok(m.select("INBOX"))
assert take(m, "HIGHESTMODSEQ"), m.untagged_responses
# CHECK (§6.4.1) in the selected state: nothing to say.
assert ok(m.check()) == [b"CHECK completed"]
typ, data = m.logout()
assert typ == "BYE", (typ, data)

# Without ENABLE, SELECT says nothing of mod-sequences.
m = connect()
ok(m.select("INBOX"))
assert "HIGHESTMODSEQ" not in m.untagged_responses, m.untagged_responses
m.logout()

# LOGOUT by hand: the untagged BYE, then the tagged OK, then the connection closes.
s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
f = s.makefile("rb")
assert f.readline().startswith(b"* OK [CAPABILITY IMAP4rev1 ")
s.sendall(b"a LOGIN joe secret\r\n")
line = f.readline()
assert line.startswith(b"a OK [CAPABILITY IMAP4rev1 "), line
s.sendall(b"b NOOP\r\nc LOGOUT\r\n")
assert f.readline() == b"b OK NOOP completed\r\n"
line = f.readline()
assert line.startswith(b"* BYE "), line
assert f.readline() == b"c OK LOGOUT completed\r\n"
assert f.readline() == b"", "connection still open after LOGOUT"
print("ok")
