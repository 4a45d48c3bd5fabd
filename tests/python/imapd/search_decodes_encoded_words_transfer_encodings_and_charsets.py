r = Raw()
assert r.cmd(b"a1 SELECT INBOX")[-1].startswith(b"a1 OK")
def search(tag, key, text):
    data = text.encode()
    return r.cmd(tag + b" SEARCH CHARSET UTF-8 " + key + b" {%d+}\r\n" % len(data) + data)[0]
# Encoded words in Subject and From, case-insensitively (Unicode).
assert search(b"s1", b"SUBJECT", "GRÜSSE") == b"* SEARCH\r\n"
assert search(b"s2", b"SUBJECT", "grüße aus köln") == b"* SEARCH 1\r\n"
assert search(b"s3", b"FROM", "müller") == b"* SEARCH 1\r\n"
# Again, from the folder's cache, which holds the decoded value: prove it by changing the
# record (same length) behind the server's back.
path = os.path.join(MAILDIR, "rqmail-cache")
cache = open(path, "rb").read()
assert "Subject: Grüße aus Köln\n".encode() in cache, cache
open(path, "wb").write(cache.replace("aus Köln".encode(), "aus Kölx".encode()))
assert search(b"s4", b"SUBJECT", "Kölx") == b"* SEARCH 1\r\n"
assert search(b"s5", b"HEADER SUBJECT", "Grüße") == b"* SEARCH 1\r\n"
# A base64 body, and a quoted-printable Latin-1 one.
assert search(b"b1", b"BODY", "l'été est là") == b"* SEARCH 2\r\n"
assert search(b"b2", b"BODY", "FAÇADE") == b"* SEARCH 3\r\n"
assert search(b"b3", b"TEXT", "naïve") == b"* SEARCH 3\r\n"
assert search(b"b4", b"TEXT", "jürgen") == b"* SEARCH 1\r\n"
# The raw bytes still match as before.
assert search(b"b5", b"BODY", "ZMOpasOg") == b"* SEARCH 2\r\n"
assert search(b"b6", b"BODY", "plain ascii") == b"* SEARCH 1\r\n"
print("ok")
