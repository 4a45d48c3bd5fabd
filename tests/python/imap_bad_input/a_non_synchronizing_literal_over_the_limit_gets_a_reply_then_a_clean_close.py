r = Raw()
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
start = time.monotonic()
r.send(b"a1 APPEND INBOX {100000000+}\r\n")
# LITERAL+: the client sends the bytes without waiting; a server that stops reading
# must not leave it blocked forever, nor hang itself.
def flood():
    try:
        for _ in range(16):
            r.s.sendall(b"x" * 65536)
    except OSError:
        pass
threading.Thread(target=flood, daemon=True).start()
rest = r.closed_within(15)
took = time.monotonic() - start
assert rest is not None, "the server neither answered nor closed within 15 s"
lines = rest.split(b"\r\n")
# RFC 7888 section 4: refuse with a tagged BAD or NO ([TOOBIG]), or say * BYE, then close.
assert any(re.match(rb"(a1 (BAD|NO)|\* BYE) ", l) for l in lines), rest[:300]
print("closed after %.1f s with %r" % (took, rest[:200]))
# The server lives on: a new session works.
r = Raw()
assert r.last(b"s SELECT INBOX") .startswith(b"s OK")
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
