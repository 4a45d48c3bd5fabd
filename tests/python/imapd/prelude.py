import imaplib, os, re, socket, time
import rqtest
from rqtest import crlf_wire as wire, env_port, ok
PORT = env_port()
MAILDIR = os.path.join(os.environ["HOME_DIR"], "homes", "bob", "Maildir")

def connect():
    m = imaplib.IMAP4("127.0.0.1", PORT, timeout=30)
    assert m.state == "AUTH", m.state
    return m

def files(folder=""):
    """{unique: (sub/name)} of the messages in a folder ("" = INBOX)."""
    d = os.path.join(MAILDIR, "." + folder) if folder else MAILDIR
    found = {}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(d, sub)):
            if not name.startswith("."):
                found[name.split(":")[0]] = os.path.join(d, sub, name)
    return found

class Raw(rqtest.Raw):
    """A session on a bare socket, for exact replies."""
    def __init__(self):
        super().__init__(PORT)
