import calendar, datetime, imaplib, json, os, re, socket, sys, time
from rqtest import crlf_wire as wire, env_port, imap_login, ok
PORT = env_port()
MAILDIR = os.environ["MAILDIR"]

def connect():
    return imap_login(PORT)

def no(result, code=None):
    typ, data = result
    assert typ == "NO", (typ, data)
    if code is not None:
        assert data[0].startswith(code), (code, data)
    return data

def take(m, name):
    """The untagged responses (or response codes) of one kind, removed."""
    return m.untagged_responses.pop(name, [])

def folder_dir(name):
    return MAILDIR if name == "INBOX" else os.path.join(MAILDIR, "." + name)

def files(name="INBOX"):
    """{unique name: path} of the messages in a folder."""
    d = folder_dir(name)
    found = {}
    for sub in ("new", "cur"):
        for f in os.listdir(os.path.join(d, sub)):
            if not f.startswith("."):
                found[f.split(":")[0]] = os.path.join(d, sub, f)
    return found

def info(path):
    """The Maildir info letters of a message file."""
    return path.split(":2,")[1] if ":2," in path else ""

def by_msgid(name="INBOX"):
    """{Message-ID: path} of the messages in a folder, read from the files."""
    out = {}
    for path in files(name).values():
        mid = re.search(rb"(?im)^Message-ID: *(<[^>]*>)", open(path, "rb").read())
        out[mid.group(1).decode()] = path
    return out

def uid_map(m):
    """{UID: Message-ID} of the selected mailbox, in one UID FETCH."""
    out = {}
    for item in ok(m.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")):
        if not isinstance(item, tuple):
            continue
        uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
        mid = re.search(rb"<[^>]*>", item[1])
        out[uid] = mid.group(0).decode() if mid else None
    return out

def uid_set(text):
    """A sequence set of numbers (no *) as the list it stands for, in its order."""
    out = []
    for part in text.split(","):
        a, _, b = part.partition(":")
        a, b = int(a), int(b or a)
        out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return out

def copyuid(text):
    """(validity, source UIDs, destination UIDs) of a [COPYUID ...] code."""
    mo = re.search(rb"COPYUID (\d+) ([\d:,]+) ([\d:,]+)", text)
    assert mo, text
    return int(mo.group(1)), uid_set(mo.group(2).decode()), uid_set(mo.group(3).decode())

def listing(m, reference, pattern, command="LIST"):
    """{name: set of attributes} of a LIST or LSUB reply."""
    typ, data = m._simple_command(command, reference, pattern)
    assert typ == "OK", (typ, data)
    out = {}
    for line in m.untagged_responses.pop(command, []):
        if line is None:
            continue
        mo = re.fullmatch(rb'\(([^)]*)\) "\." "?([^"]*)"?', line)
        assert mo, line
        out[mo.group(2).decode()] = set(mo.group(1).decode().split())
    return out

def status(m, name, items="(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"):
    data = ok(m.status(name, items))
    mo = re.fullmatch(rb'"?[^"]*"? \((.*)\)', data[0])
    assert mo, data
    words = mo.group(1).split()
    return {words[i].decode(): int(words[i + 1]) for i in range(0, len(words), 2)}

def after_expunges(uids, seqs):
    """The UIDs left after EXPUNGE responses (sequence numbers, each counted after the
    ones before it)."""
    left = list(uids)
    for seq in seqs:
        del left[int(seq) - 1]
    return left

def refused(f, *args):
    """True if the command got NO or BAD (which imaplib raises)."""
    try:
        typ, data = f(*args)
    except imaplib.IMAP4.error:
        return True
    assert typ == "NO", (typ, data)
    return True

def message(n, subject, extra=b"", body=b"body\r\n"):
    return (b"Message-ID: <%s@test>\r\nSubject: %s\r\n%s\r\n%s" % (n.encode(), subject, extra, body))
