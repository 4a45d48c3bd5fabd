import os, socket
s = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])))
f = s.makefile("rb")
def replies():
    out = []
    while True:
        line = f.readline()
        assert line, "connection closed"
        out.append(line)
        if line[3:4] != b"-":
            return out
def cmd(text, want=b""):
    s.sendall(text + b"\r\n")
    lines = replies()
    assert lines[-1].startswith(want), (text, lines)
    return lines
replies()
size = [l for l in cmd(b"EHLO c", b"250 ") if l[4:8] == b"SIZE"]
print("ehlo:", size[0].decode().strip())
print("mail over:", cmd(b"MAIL FROM:<a@b.example> SIZE=" + os.environ["OVER"].encode())[-1].decode().strip())
cmd(b"RSET", b"250")
cmd(b"MAIL FROM:<a@b.example>", b"250")
cmd(b"RCPT TO:<bob@example.com>", b"250")
cmd(b"DATA", b"354")
s.sendall(b"Subject: big\r\n\r\n")
chunk = (b"x" * 998 + b"\r\n") * 1000
lines = int(os.environ["LINES"])
while lines >= 1000:
    s.sendall(chunk)
    lines -= 1000
s.sendall((b"x" * 998 + b"\r\n") * lines)
print("data:", cmd(b".")[-1].decode().strip())
cmd(b"MAIL FROM:<a@b.example>", b"250")
cmd(b"RCPT TO:<bob@example.com>", b"250")
cmd(b"DATA", b"354")
print("small:", cmd(b"Subject: small\r\n\r\nfits\r\n.")[-1].decode().strip())
cmd(b"QUIT", b"221")
