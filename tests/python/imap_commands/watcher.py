STOP, OUT = os.environ["STOP"], os.environ["OUT"]
first_uid = {}          # Message-ID -> UID
validity = None
selects = reconnects = rounds = 0
highest = 0
ready = False
while True:
    stopping = os.path.exists(STOP)
    try:
        try:
            m = connect()
        except imaplib.IMAP4.error as e:
            # imapd killed before it answered the LOGIN: the front says so.
            assert "[UNAVAILABLE]" in str(e), e
            raise EOFError(e)
        for _ in range(5):
            typ, data = m.select("INBOX")
            assert typ == "OK", (typ, data)
            v = int(m.untagged_responses["UIDVALIDITY"][0])
            assert validity in (None, v), ("UIDVALIDITY changed", validity, v)
            validity = v
            snapshot = []
            if int(data[0]) > 0:
                for item in ok(m.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")):
                    if isinstance(item, tuple):
                        uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                        snapshot.append((uid, re.search(rb"<[^>]*>", item[1]).group(0).decode()))
            uids = [u for u, _ in snapshot]
            assert uids == sorted(set(uids)), ("UIDs not ascending", uids)
            fresh = [(u, mid) for u, mid in snapshot if mid not in first_uid]
            for u, mid in snapshot:
                if mid in first_uid:
                    assert first_uid[mid] == u, ("UID changed", mid, first_uid[mid], u)
            taken = set(first_uid.values())
            for u, mid in fresh:
                assert u > highest, ("a new message below a UID seen before", u, mid, highest)
                assert u not in taken, ("UID used twice", u, mid)
            for u, mid in fresh:
                first_uid[mid] = u
            rounds += bool(fresh)
            highest = max([highest] + uids)
            selects += 1
            if not ready:
                print("ready", flush=True)
                ready = True
        m.logout()
    except (imaplib.IMAP4.abort, OSError, EOFError) as e:
        reconnects += 1
        continue
    if stopping:
        break
json.dump({"validity": validity, "uids": first_uid, "selects": selects,
           "reconnects": reconnects, "rounds": rounds}, open(OUT, "w"))
print("ok")
