import os, smtplib, socket
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
code, caps = s.ehlo("c"); assert b"SIZE 1000" in caps, caps
code, msg = s.docmd("MAIL FROM:<a@b.example> SIZE=5000"); assert code == 552, (code, msg)
code, msg = s.docmd("MAIL FROM:<a@b.example> FOO=bar"); assert code == 555, (code, msg)
code, msg = s.docmd("MAIL FROM:<a@b.example>"); assert code == 250
code, msg = s.docmd("MAIL FROM:<a@b.example>"); assert code == 503, "nested MAIL"
s.rset()
code, msg = s.docmd("RCPT TO:<bob@example.com>"); assert code == 503, "RCPT before MAIL"
code, msg = s.docmd("DATA"); assert code == 503
code, msg = s.docmd("X" * 600); assert code == 500 and msg.startswith(b"5.5.2"), (code, msg)
code, msg = s.docmd("FROB"); assert code == 502
# smtplib announces SIZE, so an oversize message is refused at MAIL...
try:
    s.sendmail("a@b.example", ["bob@example.com"], b"Subject: big\r\n\r\n" + b"x" * 2000 + b"\r\n")
    raise SystemExit("oversize accepted")
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 552, e
# ...and one that does not announce it is refused after its data.
s.rset()
s.docmd("MAIL FROM:<a@b.example>"); s.docmd("RCPT TO:<bob@example.com>")
code, msg = s.data(b"Subject: big\r\n\r\n" + b"x" * 2000 + b"\r\n")
assert code == 552 and msg.startswith(b"5.3.4"), (code, msg)
for sender in ["spammer@bad.example", "anyone@worse.example"]:
    s.mail(sender)
    code, msg = s.rcpt("bob@example.com"); assert code == 553, (code, msg)
    s.rset()
s.mail("a@b.example")
for i in range(3):
    code, msg = s.rcpt("bob@example.com"); assert code == 250, (i, code, msg)
code, msg = s.rcpt("bob@example.com"); assert code == 452 and msg.startswith(b"4.5.3"), (code, msg)
s.rset()
s.sendmail("a@b.example", ["bob@example.com"], b"Subject: small\r\n\r\nfits\r\n")
s.quit()
# A client without HELO cannot send mail.
s = smtplib.SMTP("127.0.0.1", int(os.environ["PORT"]))
code, msg = s.docmd("MAIL FROM:<a@b.example>"); assert code == 503, (code, msg)
