import os, poplib, socket, time
import rqtest
from rqtest import env_port
PORT = env_port()
MAILDIR = os.path.join(os.environ["HOME_DIR"], "homes", "bob", "Maildir")

def connect():
    deadline = time.time() + 10
    while True:
        try:
            return poplib.POP3("127.0.0.1", PORT, timeout=30)
        except poplib.error_proto as e:
            if b"[IN-USE]" in e.args[0] and time.time() < deadline:
                time.sleep(0.05)
                continue
            raise

class Raw(rqtest.Raw):
    """A session on a bare socket, for byte-exact replies: one line per command."""
    def __init__(self):
        deadline = time.time() + 10
        while True:
            super().__init__(PORT)
            if b"[IN-USE]" in self.greeting and time.time() < deadline:
                self.s.close()
                time.sleep(0.05)
                continue
            break
    def cmd(self, line):
        self.send(line + b"\r\n")
        return self.f.readline()
    def multi(self, line):
        self.send(line + b"\r\n")
        data = self.f.readline()
        while True:
            l = self.f.readline()
            assert l.endswith(b"\r\n"), (data, l)
            data += l
            if l == b".\r\n":
                return data

def messages():
    """(path, unique name) of each message, in the order the server numbers them."""
    found = []
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(MAILDIR, sub)):
            if not name.startswith("."):
                path = os.path.join(MAILDIR, sub, name)
                found.append((os.stat(path).st_mtime_ns, name, path))
    found.sort()
    return [(path, name.split(":")[0]) for _, name, path in found]

def wire(path, stuff=True):
    """The message as RETR must send it: CR LF line ends, dot-stuffed."""
    data = open(path, "rb").read()
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    return b"".join((b"." + l if stuff and l.startswith(b".") else l) + b"\r\n" for l in lines)
