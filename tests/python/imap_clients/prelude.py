import imaplib, os, ssl, sys, time
from rqtest import tls_context; ctx = tls_context()
MAILDIR = os.environ["MAILDIR"]
STARTTLS_PORT = int(os.environ["STARTTLS_PORT"])
IMAPS_PORT = int(os.environ["IMAPS_PORT"])

def files():
    """file name -> the message as IMAP carries it (CR LF line ends)."""
    found = {}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(MAILDIR, sub)):
            data = open(os.path.join(MAILDIR, sub, name), "rb").read()
            found[sub + "/" + name] = data.replace(b"\n", b"\r\n")
    return found

def login(implicit):
    if implicit:
        m = imaplib.IMAP4_SSL("127.0.0.1", IMAPS_PORT, ssl_context=ctx, timeout=30)
        assert "STARTTLS" not in m.capabilities, m.capabilities
    else:
        m = imaplib.IMAP4("127.0.0.1", STARTTLS_PORT, timeout=30)
        # No IMAP_PLAINTEXT: no password before STARTTLS.
        assert "STARTTLS" in m.capabilities and "LOGINDISABLED" in m.capabilities, m.capabilities
        m.starttls(ssl_context=ctx)
    typ, data = m.login("joe", "secret")
    assert typ == "OK", (typ, data)
    return m
