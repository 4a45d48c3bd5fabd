import imaplib, os
port = int(os.environ["PORT"])
m = imaplib.IMAP4("127.0.0.1", port)
try:
    m.login("alice@b.test", "alice-a-pw")
    raise SystemExit("another domain's password accepted over IMAP")
except imaplib.IMAP4.error:
    pass
m = imaplib.IMAP4("127.0.0.1", port)
m.login("alice@b.test", "alice-b-pw")
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"2"], (typ, data)
typ, data = m.fetch("1:*", "(BODY[HEADER.FIELDS (SUBJECT)])")
subjects = b"".join(d[1] for d in data if isinstance(d, tuple))
assert b"Subject: to b" in subjects and b"Subject: to a" not in subjects, subjects
typ, data = m.store("1:*", "-FLAGS", "(\\Seen)")
assert typ == "OK", data
typ, data = m.fetch("1", "(BODY[])")
assert typ == "OK"
typ, data = m.search(None, "SEEN")
assert data == [b"1"], data
m.logout()
m = imaplib.IMAP4("127.0.0.1", port)
try:
    m.login("nobody@a.test", "x")
    raise SystemExit("unknown virtual user accepted over IMAP")
except imaplib.IMAP4.error:
    pass
# bob@a.test has a quota of 1500 bytes: IMAP honours it too (RFC 5530's OVERQUOTA), and
# keeps maildirsize up to date as it adds and removes messages.
m = imaplib.IMAP4("127.0.0.1", port)
m.login("bob@a.test", "bob-pw")
big = b"Subject: too big\r\n\r\n" + b"x" * 1600 + b"\r\n"
typ, data = m.append("INBOX", None, None, big)
assert typ == "NO" and b"[OVERQUOTA]" in data[0], (typ, data)
typ, data = m.select("INBOX")
assert typ == "OK", data
typ, data = m.store("1:*", "+FLAGS", "(\\Deleted)")
assert typ == "OK", data
typ, data = m.expunge()
assert typ == "OK", data
small = b"Subject: fits\r\n\r\n" + b"y" * 1000 + b"\r\n"
typ, data = m.append("Archive", None, None, small)
assert typ == "OK", (typ, data)
m.logout()
print("imap ok")
