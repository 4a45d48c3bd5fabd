r = Raw()
assert r.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
first = r.cmd(b"f1 FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY)")
cache = open(os.path.join(MAILDIR, "rqmail-cache"), "rb").read()
assert cache.startswith(b"rqmail-cache 2 "), cache[:40]
assert cache.count(b"\nE ") == 2 and cache.count(b"\nS ") == 2 and cache.count(b"\nB ") == 2, cache
# A second session answers the same, from the cache: prove it by changing a record
# (same length) behind the server's back.
s = Raw()
assert s.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
assert s.cmd(b"f1 FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY)") == first
marked = cache.replace(b'"one"', b'"ONE"')
assert marked != cache
open(os.path.join(MAILDIR, "rqmail-cache"), "wb").write(marked)
t = b"".join(s.cmd(b"f2 FETCH 2 (ENVELOPE)"))
assert b'"ONE"' in t, t
# SEARCH on From/To/Cc/Bcc/Subject keeps those fields in the cache, and reads them there.
assert s.cmd(b"q1 SEARCH SUBJECT one")[0] == b"* SEARCH 2\r\n"
cache = open(os.path.join(MAILDIR, "rqmail-cache"), "rb").read()
assert cache.count(b"\nF ") == 2 and b"Subject: one\n" in cache, cache
open(os.path.join(MAILDIR, "rqmail-cache"), "wb").write(cache.replace(b"Subject: one\n", b"Subject: xyz\n"))
u = Raw()
assert u.cmd(b"s SELECT INBOX")[-1].startswith(b"s OK")
assert u.cmd(b"q2 SEARCH SUBJECT xyz")[0] == b"* SEARCH 2\r\n"
assert u.cmd(b"q3 SEARCH OR FROM alice SUBJECT xyz")[0] == b"* SEARCH 1 2\r\n"
# Other fields still come from the message.
assert u.cmd(b"q4 SEARCH HEADER Message-ID m1@remote")[0] == b"* SEARCH 1\r\n"
print("ok")
