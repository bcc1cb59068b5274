"""An AMQP 0-9-1 login as a client makes it (connection.start ... connection.open-ok, then a
clean connection.close), over a plain socket: the proof that the broker really serves clients.
Written against the standard library because the harness runs under whatever python3 comes
first in PATH, which need not be Debian's (with python3-pika)."""
import socket
import struct

FRAME_METHOD, FRAME_END = 1, 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
# (class, method) of the connection class's methods used here
START, START_OK, TUNE, TUNE_OK = (10, 10), (10, 11), (10, 30), (10, 31)
OPEN, OPEN_OK, CLOSE, CLOSE_OK = (10, 40), (10, 41), (10, 50), (10, 51)


class Refused(Exception):
    """The broker did not go through the handshake; the text says where and why."""


def _shortstr(s):
    b = s.encode()
    return struct.pack(">B", len(b)) + b


def _longstr(b):
    return struct.pack(">I", len(b)) + b


def _send(sock, method, args=b""):
    payload = struct.pack(">HH", *method) + args
    sock.sendall(struct.pack(">BHI", FRAME_METHOD, 0, len(payload)) + payload + bytes([FRAME_END]))


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise Refused("the broker closed the connection")
        buf += chunk
    return buf


def _expect(sock, method, name):
    """The arguments of the next frame, which must be the method METHOD on channel 0; a
    connection.close instead raises Refused with the broker's reply code and text."""
    head = _recv_exact(sock, 7)
    if head.startswith(b"AMQP"):
        raise Refused(f"the broker wants another protocol version ({head!r})")
    ftype, channel, size = struct.unpack(">BHI", head)
    payload = _recv_exact(sock, size + 1)
    if ftype != FRAME_METHOD or channel != 0 or size < 4 or payload[-1] != FRAME_END:
        raise Refused(f"unexpected frame while waiting for {name} (type {ftype}, channel {channel})")
    got = struct.unpack(">HH", payload[:4])
    if got == CLOSE:
        code, = struct.unpack(">H", payload[4:6])
        text = payload[7:7 + payload[6]].decode("utf-8", "replace")
        raise Refused(f"the broker closed the connection: {code} {text}")
    if got != method:
        raise Refused(f"expected {name}, got method {got[0]}.{got[1]}")
    return payload[4:-1]


def login(port, user="guest", password="guest", vhost="/", host="127.0.0.1", timeout=3.0):
    """Log in to the broker on HOST:PORT as USER, open VHOST and close the connection again.
    Returns None if the broker went through the whole handshake, else why not (a sentence)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(PROTOCOL_HEADER)
            args = _expect(s, START, "connection.start")
            props_len, = struct.unpack(">I", args[2:6])
            # the longstr after server-properties, by its own length: the locales longstr
            # follows it, and the broker lists its mechanisms in no fixed order
            mech_len, = struct.unpack(">I", args[6 + props_len:10 + props_len])
            mechanisms = args[10 + props_len:10 + props_len + mech_len].split()
            if args[:2] != b"\x00\x09" or b"PLAIN" not in mechanisms:
                raise Refused(f"the broker speaks AMQP {args[0]}-{args[1]} with mechanisms "
                              f"{b' '.join(mechanisms).decode()}, not 0-9 with PLAIN")
            # authentication_failure_close: be told why a login fails, not just disconnected
            caps = _shortstr("authentication_failure_close") + b"t\x01"
            props = (_shortstr("product") + b"S" + _longstr(b"ferry-test-services")
                     + _shortstr("capabilities") + b"F" + _longstr(caps))
            _send(s, START_OK, _longstr(props) + _shortstr("PLAIN")
                  + _longstr(f"\0{user}\0{password}".encode()) + _shortstr("en_US"))
            channel_max, frame_max, _ = struct.unpack(">HIH", _expect(s, TUNE, "connection.tune")[:8])
            _send(s, TUNE_OK, struct.pack(">HIH", channel_max, frame_max, 0))  # no heartbeats
            _send(s, OPEN, _shortstr(vhost) + _shortstr("") + b"\x00")
            _expect(s, OPEN_OK, "connection.open-ok")
            _send(s, CLOSE, struct.pack(">H", 200) + _shortstr("ready check done") + struct.pack(">HH", 0, 0))
            _expect(s, CLOSE_OK, "connection.close-ok")
            return None
    except socket.timeout:
        return f"no answer within {timeout:g} s"
    except OSError as e:
        return e.strerror or str(e)
    except (Refused, struct.error) as e:
        return str(e) or "a malformed frame"
