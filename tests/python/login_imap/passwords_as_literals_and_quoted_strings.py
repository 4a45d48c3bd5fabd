PASSWORD = b'se "cr\\et'
# imaplib quotes the password, escaping the quote and the backslash.
m = imaplib.IMAP4("127.0.0.1", PORT, timeout=20)
assert m.login("joe", PASSWORD.decode())[0] == "OK"
m.logout()
# imaplib's synchronizing literal.
m = imaplib.IMAP4("127.0.0.1", PORT, timeout=20)
m.literal = PASSWORD
assert m._simple_command("LOGIN", "joe")[0] == "OK"
m.logout()
# Synchronizing literals for both, by hand.
s, f = connect()
s.sendall(b"a LOGIN {3}\r\n")
expect(f, b"+ ")
s.sendall(b"joe {%d}\r\n" % len(PASSWORD))
expect(f, b"+ ")
s.sendall(PASSWORD + b"\r\n")
expect(f, b"a OK logged in")
s.close()
# LITERAL+: everything in one packet, no continuation.
s, f = connect()
s.sendall(b"b LOGIN {3+}\r\njoe {%d+}\r\n%s\r\nc NOOP\r\n" % (len(PASSWORD), PASSWORD))
expect(f, b"b OK logged in", b"c OK echo c NOOP")
s.close()
# Too large: a synchronizing literal is refused, a non-synchronizing one ends the connection.
s, f = connect()
s.sendall(b"d LOGIN joe {5000}\r\n")
expect(f, b"d NO [TOOBIG]")
s.sendall(b"e LOGIN joe {5000+}\r\n" + b"x" * 5000 + b"\r\n")
expect(f, b"* BYE [TOOBIG]")
assert f.readline() == b""
