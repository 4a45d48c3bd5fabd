import smtplib
SMTP_PORT = int(os.environ["SMTP_PORT"])
m = connect()
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"1"], (typ, data)
m.send(b"i1 IDLE\r\n")
line = m.readline()
assert line.startswith(b"+ "), line
# The SMTP transaction, ended by the reply to the message's final dot.
smtp = smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=30)
smtp.ehlo("client.example")
refused = smtp.sendmail("alice@remote.example", ["joe@example.com"],
                        b"Message-ID: <idle@test>\r\nSubject: idle via smtp\r\n\r\nhello idler\r\n")
sent = time.monotonic()
assert refused == {}, refused
lines = []
while True:
    line = m.readline()
    assert line, ("connection closed", lines)
    lines.append(line)
    if re.fullmatch(rb"\* 2 EXISTS\r\n", line):
        break
    assert not line.startswith(b"i1 "), lines
delay = time.monotonic() - sent
smtp.quit()
print("EXISTS %.3f s after the SMTP transaction" % delay)
assert delay < 1.0, (delay, lines)
m.send(b"DONE\r\n")
line = m.readline()
while line.startswith(b"* "):
    line = m.readline()
assert line == b"i1 OK IDLE terminated\r\n", line
# The message IDLE announced is the one sent, as it lies in the Maildir.
data = ok(m.fetch("2", "(BODY.PEEK[])"))
assert data[0][1] == wire(by_msgid()["<idle@test>"]), data
assert b"Received: from " in data[0][1] and data[0][1].endswith(b"\r\n\r\nhello idler\r\n"), data
m.logout()
print("ok")
