import os, re, socket, threading, time
import rqtest
from rqtest import env_port
PORT = env_port()
MAILDIR = os.environ["MAILDIR"]

class Raw(rqtest.Raw):
    """A session on a bare socket; logged in unless told otherwise."""
    def __init__(self, login=True):
        super().__init__(PORT, timeout=20)
        assert self.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 "), self.greeting
        if login:
            lines = self.cmd(b"L LOGIN joe secret")
            assert lines[-1].startswith(b"L OK "), lines

def folder_dir(folder):
    return os.path.join(MAILDIR, "." + folder) if folder else MAILDIR

def messages(folder=""):
    """The folder's message files (new/ and cur/), as sub/name."""
    d = folder_dir(folder)
    return sorted(sub + "/" + n for sub in ("new", "cur")
                  for n in os.listdir(os.path.join(d, sub)) if not n.startswith("."))

def tmp(folder=""):
    return sorted(os.listdir(os.path.join(folder_dir(folder), "tmp")))

def flags(r, seq):
    """The FLAGS of message `seq`, fetched in session r."""
    lines = r.cmd(b"f FETCH %d (FLAGS)" % seq)
    assert lines[-1].startswith(b"f OK"), lines
    fetched = [l for l in lines if l.startswith(b"* %d FETCH" % seq)]
    assert len(fetched) == 1, lines
    return re.search(rb"FLAGS \(([^)]*)\)", fetched[0]).group(1)
