import imaplib, os
m = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]))
m.login("bob@a.test", "bob-pw")
# 600 bytes as stored: over the 500 left.
big = b"Subject: too big\r\n\r\n" + b"x" * 581 + b"\r\n"
typ, data = m.append("INBOX", None, None, big)
assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), (typ, data)
# 500 bytes as stored: exactly what is left.
fits = b"Subject: fits\r\n\r\n" + b"y" * 484 + b"\r\n"
typ, data = m.append("INBOX", None, None, fits)
assert typ == "OK", (typ, data)
typ, data = m.append("INBOX", None, None, b"Subject: one more\r\n\r\n.\r\n")
assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), (typ, data)
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"2"], (typ, data)
typ, data = m.copy("1", "Archive")
assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]"), (typ, data)
m.logout()
# alice@a.test has no quota: large APPENDs work, and nothing passes one on from upstream.
m = imaplib.IMAP4("127.0.0.1", int(os.environ["PORT"]))
m.login("alice@a.test", "alice-a-pw")
typ, data = m.append("INBOX", None, None, b"Subject: large\r\n\r\n" + b"x" * 100000 + b"\r\n")
assert typ == "OK", (typ, data)
m.logout()
print("imap quota ok")
