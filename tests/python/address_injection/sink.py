import socket, sys, threading
out = sys.argv[1]
lock = threading.Lock()
ls = socket.socket()
ls.bind(("127.0.0.1", 0)); ls.listen(8)
print(ls.getsockname()[1], flush=True)
def serve(conn):
    conn.settimeout(30)
    f = conn.makefile("rb")
    conn.sendall(b"220 sink.test ESMTP\r\n")
    data = False
    for line in f:
        with lock:
            open(out, "ab").write(line)
        if data:
            if line == b".\r\n":
                data = False
                conn.sendall(b"250 2.0.0 ok\r\n")
            continue
        cmd = line[:4].upper()
        if cmd == b"EHLO":
            conn.sendall(b"250-sink.test\r\n250-PIPELINING\r\n250 DSN\r\n")
        elif cmd == b"DATA":
            data = True
            conn.sendall(b"354 go ahead\r\n")
        elif cmd == b"QUIT":
            conn.sendall(b"221 2.0.0 bye\r\n")
            break
        else:
            conn.sendall(b"250 2.0.0 ok\r\n")
    conn.close()
while True:
    conn, _ = ls.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
