import os, smtplib, ssl
from rqtest import tls_context; ctx = tls_context()
smtp, submission, smtps = (int(p) for p in os.environ["PORTS"].split())
msg = lambda n: ("Subject: quick start\r\n\r\nmarker-%s\r\n" % n).encode()
s = smtplib.SMTP("127.0.0.1", smtp)
code, caps = s.ehlo("client.example")
assert b"STARTTLS" in caps, caps
s.sendmail("someone@remote.example", ["test@example.test"], msg("smtp"))
s.quit()
s = smtplib.SMTP("127.0.0.1", submission)
s.ehlo("client.example"); s.starttls(context=ctx); s.ehlo("client.example")
try:
    s.sendmail("test@example.test", ["test@example.test"], msg("unauthenticated"))
    raise SystemExit("submission without AUTH accepted")
except smtplib.SMTPSenderRefused as e:
    assert e.smtp_code == 530, e
try:
    s.login("test@example.test", "wrong"); raise SystemExit("a wrong password accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535, e
s.quit()
s = smtplib.SMTP("127.0.0.1", submission)
s.ehlo("client.example"); s.starttls(context=ctx); s.ehlo("client.example")
s.login("test@example.test", "test")
s.sendmail("test@example.test", ["test@example.test"], msg("submission"))
s.quit()
s = smtplib.SMTP_SSL("127.0.0.1", smtps, context=ctx)
s.ehlo("client.example")
s.login("test@example.test", "test")
s.sendmail("test@example.test", ["test@example.test"], msg("smtps"))
s.quit()
