r = Raw()
assert r.last(b"s SELECT INBOX").startswith(b"s OK")
for probe in [
    b"a1 APPEND INBOX {100000000}",
    b"a2 APPEND INBOX (\\Seen) {100000000}",
    b"a3 SEARCH SUBJECT {100000000}",
    b"a4 CREATE {100000000}",
    b"a5 FETCH 1 (BODY[HEADER.FIELDS ({100000000}",
]:
    tag = probe.split(b" ")[0]
    start = time.monotonic()
    r.send(probe + b"\r\n")
    # No "+ go ahead": the refusal comes at once, without the server waiting for the
    # 100 MB.
    line = r.line()
    assert re.match(tag + rb" (NO|BAD) ", line), (probe, line)
    assert time.monotonic() - start < 5, time.monotonic() - start
    # Had the server taken what follows as the literal, this would get no reply.
    assert r.last(b"n NOOP") == b"n OK NOOP completed\r\n"
# A literal under the limit still works.
r.send(b"c SEARCH SUBJECT {3}\r\n")
assert r.line().startswith(b"+ ")
r.send(b"one\r\n")
assert r.until(b"c") == [b"* SEARCH 1\r\n", b"c OK SEARCH completed\r\n"]
assert r.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
