import os, poplib, ssl, time
from rqtest import tls_context; ctx = tls_context()
MAILDIR = os.environ["MAILDIR"]
started = time.time()

def login():
    for attempt in range(50):
        p = poplib.POP3_SSL("127.0.0.1", int(os.environ["POP3S_PORT"]), context=ctx, timeout=30)
        p.user("joe")
        try:
            p.pass_("secret")
            return p
        except poplib.error_proto:
            p.close()
            time.sleep(0.1)
    raise SystemExit("no login")

def session():
    p = login()
    count, _ = p.stat()
    listed = time.time()
    uids = [l.split()[1].decode() for l in p.uidl()[1]]
    subjects = [[l for l in p.top(n, 0)[1] if l.startswith(b"Subject:")][0].decode()
                for n in range(1, count + 1)]
    assert p.quit().startswith(b"+OK")
    return count, listed, uids, subjects

count, listed, uids, subjects = session()
assert count == 3, count
newest = max(os.stat(os.path.join(MAILDIR, sub, n)).st_mtime
             for sub in ("new", "cur") for n in os.listdir(os.path.join(MAILDIR, sub)))
print("same second" if int(newest) == int(listed) else "next second")
assert subjects == ["Subject: first", "Subject: second", "Subject: third"], subjects
# QUIT moved them to cur/; the next session numbers them alike.
again = session()
assert again[0] == 3 and again[2] == uids and again[3] == subjects, (again, uids)
print("ok")
