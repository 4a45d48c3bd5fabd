import os, poplib
p = poplib.POP3("127.0.0.1", int(os.environ["PORT"]))
p.user("alice@b.test")
try:
    p.pass_("alice-a-pw")
    raise SystemExit("another domain's password accepted")
except poplib.error_proto:
    pass
p = poplib.POP3("127.0.0.1", int(os.environ["PORT"]))
p.user("alice@b.test")
p.pass_("alice-b-pw")
count, size = p.stat()
assert count == 2, (count, size)
texts = [b"\n".join(p.retr(i)[1]) for i in (1, 2)]
assert any(b"Subject: to b" in t for t in texts), texts
assert not any(b"Subject: to a" in t for t in texts), texts
p.quit()
p = poplib.POP3("127.0.0.1", int(os.environ["PORT"]))
p.user("nobody@a.test")
try:
    p.pass_("x")
    raise SystemExit("unknown virtual user accepted")
except poplib.error_proto:
    pass
print("pop3 ok")
