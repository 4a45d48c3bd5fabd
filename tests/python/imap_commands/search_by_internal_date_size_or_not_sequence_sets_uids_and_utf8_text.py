# SINCE / BEFORE / ON compare the day of INTERNALDATE (§6.4.4).
assert search("SINCE", "15-Mar-2021") == [2, 3, 4, 5]
assert search("BEFORE", "15-Mar-2021") == [1]
assert search("ON", "15-Mar-2021") == [2, 3]
assert search("ON", "14-Mar-2021") == []
assert search("SINCE", "1-Jan-2022", "BEFORE", "1-Jan-2023") == [4]
assert refused(m.search, None, "SINCE", "32-Foo-2020")

# LARGER / SMALLER on RFC822.SIZE, which is the size sent.
fetched = ok(m.fetch("1:*", "(RFC822.SIZE)"))
assert [int(re.search(rb"RFC822.SIZE (\d+)", f).group(1)) for f in fetched] == SIZES, (fetched, SIZES)
for n in sorted(set(SIZES)) + [0, 10**7]:
    assert search("LARGER", str(n)) == [i + 1 for i, s in enumerate(SIZES) if s > n], n
    assert search("SMALLER", str(n)) == [i + 1 for i, s in enumerate(SIZES) if s < n], n
assert search("LARGER", str(SIZES[0] - 1), "SMALLER", str(SIZES[0] + 1)) == [1]

# OR, NOT, and their nesting with parentheses.
assert search("OR", "SUBJECT", "alpha", "SUBJECT", "delta") == [1, 5]
assert search("NOT", "SUBJECT", "alpha") == [2, 3, 4, 5]
assert search("NOT", "OR", "SUBJECT", "alpha", "SUBJECT", "delta") == [2, 3, 4]
assert search("OR", "(SINCE 1-Jan-2022 SMALLER %d)" % (SIZES[3]), "ON", "1-Feb-2020") == [1, 5]
assert search("OR", "NOT", "SINCE", "1-Jan-2021", "OR", "ON", "10-Jul-2022", "SUBJECT", "beta") == [1, 2, 4]

# Sequence sets: "*" is the last message, a range may be written backwards.
assert search("5:2") == [2, 3, 4, 5]
assert search("*:4") == [4, 5]
assert search("2,*") == [2, 5]
assert search("*") == [5]
assert search("1:2,4:*") == [1, 2, 4, 5]
assert [re.match(rb"(\d+) ", f).group(1) for f in ok(m.fetch("4:2", "(FLAGS)"))] == [b"2", b"3", b"4"]
assert refused(m.fetch, "7", "(FLAGS)")

# UID SEARCH answers UIDs; UID keys and * are UIDs (here one more than the number).
assert uid_search("SUBJECT", "beta") == [3]
assert uid_search("ALL") == [2, 3, 4, 5, 6]
assert uid_search("1:2") == [2, 3], "sequence numbers in UID SEARCH are still numbers"
assert uid_search("UID", "6:4") == [4, 5, 6]
assert uid_search("UID", "*") == [6]
assert search("UID", "3,5") == [2, 4]
assert uid_search("UID", "1") == []
assert [re.search(rb"UID (\d+)", f).group(1) for f in ok(m.uid("FETCH", "*:5", "(FLAGS)"))] == [b"5", b"6"]

# CHARSET UTF-8: a non-ASCII string (sent as a literal) in a header and in a body.
def utf8_search(key, text, uid=False):
    m.literal = text.encode()
    if uid:
        r = m.uid("SEARCH", "CHARSET", "UTF-8", key)
    else:
        r = m.search("UTF-8", key)
    return [int(n) for n in ok(r)[0].split()]
assert utf8_search("SUBJECT", "Caf\u00e9") == [3]
assert utf8_search("SUBJECT", "cr\u00e8me", uid=True) == [4]
assert utf8_search("BODY", "K\u00f6ln") == [2]
assert utf8_search("BODY", "Gr\u00fc\u00dfe") == [2]
assert utf8_search("TEXT", "\u00e8me") == [3]
assert utf8_search("BODY", "Caf\u00e9") == [], "the subject is no body text"
assert utf8_search("SUBJECT", "K\u00f6ln") == []
assert [int(n) for n in ok(m.search("US-ASCII", "SUBJECT", "gamma"))[0].split()] == [4]
typ, data = m.search("X-NOSUCH-CHARSET", "SUBJECT", "gamma")
assert typ == "NO" and data[0].startswith(b"[BADCHARSET"), (typ, data)
m.logout()
print("ok")
