def expunges(lines):
    return [l for l in lines if re.match(rb"\* \d+ EXPUNGE", l)]

a = Raw()
b = Raw()
assert a.last(b"s SELECT INBOX").startswith(b"s OK")
assert b.last(b"s SELECT INBOX").startswith(b"s OK")

# RFC 3501 7.4.1 (RFC 9051 7.5.1): no EXPUNGE while answering FETCH, STORE or SEARCH,
# or the client's message numbers would go out of step.
assert b.last(b"x1 STORE 2 +FLAGS.SILENT (\\Deleted)").startswith(b"x1 OK")
assert b.cmd(b"x2 EXPUNGE") [-2:] == [b"* 2 EXPUNGE\r\n", b"x2 OK EXPUNGE completed\r\n"]
assert len(messages()) == 3
for probe in [b"a1 FETCH 1:* (FLAGS)", b"a2 FETCH 2 (FLAGS)", b"a3 STORE 1 +FLAGS (\\Flagged)",
              b"a4 STORE 3:4 -FLAGS.SILENT (\\Draft)", b"a5 SEARCH ALL", b"a6 SEARCH UNSEEN"]:
    lines = a.cmd(probe)
    assert not expunges(lines), (probe, lines)
    assert re.match(rb"a\d (OK|NO) ", lines[-1]), (probe, lines)
# The message numbers of the replies are still the old ones: 4 messages, 2 included.
lines = a.cmd(b"a7 SEARCH ALL")
assert lines[0] == b"* SEARCH 1 2 3 4\r\n", lines
# NOOP tells.
lines = a.cmd(b"a8 NOOP")
assert expunges(lines) == [b"* 2 EXPUNGE\r\n"], lines
assert a.cmd(b"a9 SEARCH ALL")[0] == b"* SEARCH 1 2 3\r\n"

# The UID forms may send EXPUNGE (7.4.1: "An EXPUNGE response MAY be sent during a UID
# command"); if one does, everything said after it must use the new numbers, and the
# expunge must not be told twice.
assert b.last(b"y1 UID STORE 1 +FLAGS.SILENT (\\Deleted)").startswith(b"y1 OK")
assert b.last(b"y2 EXPUNGE").startswith(b"y2 OK")
assert len(messages()) == 2
for probe in [b"u1 UID FETCH 1:* (FLAGS)", b"u2 UID STORE 3 +FLAGS (\\Seen)", b"u3 UID SEARCH ALL"]:
    lines = a.cmd(probe)
    told = expunges(lines)
    assert told in ([], [b"* 1 EXPUNGE\r\n"]), (probe, lines)
    if told:
        after = lines[lines.index(told[0]) + 1:]
        for l in after:
            m = re.match(rb"\* (\d+) FETCH", l)
            assert not m or int(m.group(1)) <= 2, (probe, lines)
        break
print("UID commands " + ("told the expunge at once" if told else "left the expunge to NOOP"))
lines = a.cmd(b"u4 NOOP")
if told:
    assert not expunges(lines), ("expunge told twice", lines)
else:
    assert expunges(lines) == [b"* 1 EXPUNGE\r\n"], lines
# Both sessions agree now: message 1 is UID 3, message 2 is UID 4.
for r in (a, b):
    lines = r.cmd(b"v FETCH 1:* (UID)")
    got = [re.search(rb"\* (\d+) FETCH \(UID (\d+)\)", l).groups() for l in lines[:-1]]
    assert got == [(b"1", b"3"), (b"2", b"4")], lines
assert a.last(b"d LOGOUT").startswith(b"d OK")
assert b.last(b"d LOGOUT").startswith(b"d OK")
print("ok")
