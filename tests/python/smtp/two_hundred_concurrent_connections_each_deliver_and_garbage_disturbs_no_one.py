import os, smtplib, socket, threading
port = int(os.environ["PORT"])
errors = []
def garbage():
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(30)
    try:
        for i in range(200):
            s.sendall(os.urandom(700).replace(b"\n", b"x") + b"\r\n" + b"\x00\xff junk\r\n" * 5)
    except OSError:
        pass
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk: break
            data += chunk
    except OSError:
        pass
    if b"421 4.7.0" not in data: errors.append("no 421 for garbage: %r" % data[-200:])
def client(i):
    try:
        s = smtplib.SMTP("127.0.0.1", port, timeout=60); s.ehlo("c%d" % i)
        s.sendmail("a@b.example", ["bob@example.com"], ("Subject: n%d\r\n\r\nmessage %d\r\n" % (i, i)).encode())
        s.quit()
    except Exception as e:
        errors.append("client %d: %r" % (i, e))
threads = [threading.Thread(target=garbage)] + [threading.Thread(target=client, args=(i,)) for i in range(200)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors[:5]
print("all sent")
