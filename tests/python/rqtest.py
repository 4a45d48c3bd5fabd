"""Client helpers shared by the end-to-end tests' Python scripts.

The harness (tests/src/lib.rs, `python_command`) puts this directory on PYTHONPATH for
every Python script the tests run, so a script says `from rqtest import ...`. Ports,
paths and the like reach the scripts through environment variables.
"""
import imaplib, os, re, socket, ssl

HOST = "127.0.0.1"


def env_port(name="PORT"):
    """The port in environment variable `name`."""
    return int(os.environ[name])


def tls_context():
    """A client TLS context that accepts any certificate (the tests' are self-signed)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def ok(result):
    """The data of an imaplib result, asserting it was OK."""
    typ, data = result
    assert typ == "OK", (typ, data)
    return data


def crlf_wire(path):
    """A message file as IMAP's FETCH BODY[] sends it: every line ended by CR LF."""
    data = re.sub(rb"(?<!\r)\n", b"\r\n", open(path, "rb").read())
    return data if not data or data.endswith(b"\n") else data + b"\r\n"


def connect_line(port, greeting_prefix, timeout=20):
    """A bare socket and its reading file, after a greeting that starts with
    `greeting_prefix` (asserted)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    f = s.makefile("rb")
    greeting = f.readline()
    assert greeting.startswith(greeting_prefix), greeting
    return s, f


def expect(f, *prefixes):
    """Reads one line per prefix, asserting each starts with its prefix."""
    for want in prefixes:
        line = f.readline()
        assert line.startswith(want), (want, line)


class Raw:
    """A tagged (IMAP-style) line dialog on a bare socket, for exact replies."""

    def __init__(self, port, timeout=30):
        self.s = socket.create_connection((HOST, port), timeout=timeout)
        self.f = self.s.makefile("rb")
        self.greeting = self.f.readline()

    def send(self, data):
        self.s.sendall(data)

    def line(self):
        l = self.f.readline()
        assert l, "connection closed"
        return l

    def until(self, tag):
        """The lines up to and with the one tagged `tag`."""
        lines = []
        while True:
            l = self.f.readline()
            assert l, ("connection closed", lines)
            lines.append(l)
            if l.startswith(tag + b" "):
                return lines

    def cmd(self, line):
        """Sends a command line (its first word the tag); the lines of its reply."""
        self.send(line + b"\r\n")
        return self.until(line.split(b" ")[0])

    def last(self, line):
        return self.cmd(line)[-1]

    def rest(self):
        """Every line until the server closes the connection."""
        lines = []
        while True:
            l = self.f.readline()
            if not l:
                return lines
            lines.append(l)

    def closed_within(self, seconds):
        """Reads what is left until the server closes; None if it keeps the socket open."""
        self.s.settimeout(seconds)
        rest = b""
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return rest
                rest += chunk
        except socket.timeout:
            return None
        except ConnectionResetError:
            return rest

    def close(self):
        # The socket closes only once its file object is closed too.
        self.f.close()
        self.s.close()


def imap_login(port, user="joe", password="secret", timeout=30):
    """An imaplib session on `port`, logged in."""
    m = imaplib.IMAP4(HOST, port, timeout=timeout)
    ok(m.login(user, password))
    return m
