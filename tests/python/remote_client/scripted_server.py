import socket, ssl, sys
scenario, out, cert = sys.argv[1], sys.argv[2], sys.argv[3]
ls = socket.socket()
ls.bind(("127.0.0.1", 0)); ls.listen(1); ls.settimeout(30)
print(ls.getsockname()[1], flush=True)
conn, _ = ls.accept(); conn.settimeout(30)
got = bytearray(); buf = bytearray()

def say(text):
    conn.sendall(text.encode("latin-1"))

def line():
    while b"\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf.extend(data)
    i = buf.index(b"\n") + 1
    l = bytes(buf[:i]); del buf[:i]; got.extend(l)
    return l

def finish(read_rest=True):
    if read_rest:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                got.extend(data)
        except Exception:
            pass
    conn.close()
    open(out, "wb").write(bytes(got))
    sys.exit(0)

if scenario == "greeting554":
    say("554 5.7.1 no SMTP service here\r\n")
    finish()
say("220 mx.test ESMTP\r\n")
ext = ["PIPELINING", "SIZE 100000"]
if scenario != "7bit":
    ext.append("8BITMIME")
if scenario == "inject":
    ext.append("STARTTLS")
while True:
    l = line()
    if l is None:
        finish(False)
    cmd = l[:4].upper()
    if cmd == b"EHLO":
        say("250-mx.test\r\n" + "".join("250-%s\r\n" % e for e in ext[:-1]) + "250 %s\r\n" % ext[-1])
    elif cmd == b"STAR":
        # A man in the middle's plaintext right behind the 220: the client must drop it,
        # not take it as the reply to its EHLO inside TLS.
        say("220 2.0.0 ready\r\n550 5.7.0 injected before TLS\r\n")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert)
        conn = ctx.wrap_socket(conn, server_side=True)
        got.extend(b"<TLS>\r\n")
        ext.remove("STARTTLS")
    elif cmd == b"MAIL":
        say("250 2.1.0 ok\r\n")
    elif cmd == b"RCPT":
        say("451 4.2.1 try later\r\n" if scenario == "rcpt451" else "250 2.1.5 ok\r\n")
    elif cmd == b"DATA":
        if scenario == "rcpt451":
            say("554 5.5.1 no valid recipients\r\n")
            continue
        if scenario == "drop_at_data":
            finish(False)
        say("354 go ahead\r\n")
        while not got.endswith(b"\r\n.\r\n"):
            if line() is None:
                finish(False)
        if scenario == "drop_after_dot":
            finish(False)
        say("250 2.0.0 ok queued as 42\r\n")
    elif cmd == b"QUIT":
        say("221 2.0.0 bye\r\n")
        finish()
    else:
        say("502 5.5.2 unknown command\r\n")
