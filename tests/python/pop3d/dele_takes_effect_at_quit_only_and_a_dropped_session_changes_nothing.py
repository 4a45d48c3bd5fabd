msgs = messages()
# Dropped: DELE, then the connection closes without QUIT.
r = Raw()
assert r.cmd(b"DELE 1") == b"+OK message 1 deleted\r\n"
assert r.cmd(b"STAT").startswith(b"+OK 2 ")
r.close()
p = connect()
assert p.stat()[0] == 3
assert all(os.path.exists(path) for path, _ in msgs), "nothing removed or moved"
# RSET unmarks.
p.dele(1)
p.dele(2)
assert p.stat()[0] == 1
assert p._shortcmd("LAST") == b"+OK 2"
p.rset()
assert p.stat()[0] == 3
# DELE marks; the file goes at QUIT only.
p.dele(2)
assert os.path.exists(msgs[1][0])
try:
    p.retr(2)
    raise SystemExit("deleted message retrieved")
except poplib.error_proto as e:
    assert e.args[0] == b"-ERR message 2 already deleted", e
assert p.quit() == b"+OK bye"
assert not os.path.exists(msgs[1][0])
p = connect()
resp, uids, _ = p.uidl()
assert uids == [b"1 " + msgs[0][1].encode(), b"2 " + msgs[2][1].encode()], uids
p.quit()
print("ok")
