lines = [b"line %04d of a larger body\r\n" % i for i in range(150)]
big = b"".join(lines)
MESSAGES = [
    # (internal date, Date header, subject, body)
    ("01-Feb-2020 10:00:00 +0000", b"Sat, 15 Jun 2019 12:00:00 +0000", b"alpha", b"short\r\n"),
    ("15-Mar-2021 23:30:00 +0000", b"Sat, 01 Jan 2022 09:00:00 +0000", b"beta",
     "Gr\u00fc\u00dfe aus K\u00f6ln\r\n".encode() + b"".join(lines[:70])),
    ("15-Mar-2021 00:10:00 +0000", b"Mon, 05 Mar 2018 10:00:00 +0000",
     "Caf\u00e9 cr\u00e8me".encode(), b"plain ascii body\r\n"),
    ("10-Jul-2022 12:00:00 +0000", b"Sun, 10 Jul 2022 11:00:00 +0000", b"gamma", big),
    ("20-Dec-2023 18:00:00 +0000", b"Wed, 20 Dec 2023 17:00:00 +0000", b"delta", b"last\r\n"),
]
m = connect()
ok(m.append("INBOX", r"(\Deleted)", None, message("dummy", b"dummy")))
for i, (internal, date, subject, body) in enumerate(MESSAGES):
    ok(m.append("INBOX", None, '"%s"' % internal, message("s%d" % (i + 1), subject, b"Date: " + date + b"\r\n", body)))
ok(m.select("INBOX"))
ok(m.expunge())
assert uid_map(m) == {i + 2: "<s%d@test>" % (i + 1) for i in range(5)}, uid_map(m)
SIZES = [len(message("s%d" % (i + 1), s, b"Date: " + d + b"\r\n", b)) for i, (_, d, s, b) in enumerate(MESSAGES)]

def search(*keys):
    return [int(n) for n in ok(m.search(None, *keys))[0].split()]

def uid_search(*keys):
    return [int(n) for n in ok(m.uid("SEARCH", *keys))[0].split()]
