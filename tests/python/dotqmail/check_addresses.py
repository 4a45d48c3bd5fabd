import email, email.policy, sys
path, want = sys.argv[1], sys.argv[2:]
data = open(path, "rb").read()
def parse(data):
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert not msg.defects, msg.defects
    return msg
msg = parse(data)
below = b"\n--- Below this line is a copy of the message.\n\n"
copy = parse(data.split(below, 1)[1]) if below in data else None
for name, user, domain in zip(want[0::3], want[1::3], want[2::3]):
    source = copy if name.startswith("copy.") else msg
    name = name.removeprefix("copy.")
    field = source[name]
    assert field is not None, name
    if name == "Return-Path":
        # Not among the package's address fields: parse what is in the angle brackets.
        value = str(field).strip()
        assert value.startswith("<") and value.endswith(">"), value
        field = email.policy.default.header_factory("To", value[1:-1])
    assert not field.defects, (name, str(field), field.defects)
    assert len(field.addresses) == 1, (name, str(field), field.addresses)
    got = field.addresses[0]
    assert (got.username, got.domain) == (user, domain), (name, str(field), got.username, got.domain)
print("ok")
