#!/usr/bin/env python3
"""unit.harness_amqp: the harness's AMQP readiness login (ferry_services/amqp.py) against a
scripted peer on loopback that sends connection.start with the broker's mechanisms in either
order (RabbitMQ lists them in no fixed order: "PLAIN AMQPLAIN" on one boot, "AMQPLAIN PLAIN"
on the next) and then closes the connection with a reason. The login must read the mechanisms
by their length and get past that check to the close; a broker without PLAIN is refused."""
import os
import socket
import struct
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ferry_services import amqp  # noqa: E402  pylint: disable=wrong-import-position


def frame(method, args):
    payload = struct.pack(">HH", *method) + args
    return struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce"


def longstr(b):
    return struct.pack(">I", len(b)) + b


def peer(srv, mechanisms):
    conn, _ = srv.accept()
    with conn:
        conn.recv(8)  # the protocol header
        props = b"\x07product" + b"S" + longstr(b"scripted")
        conn.sendall(frame(amqp.START, b"\x00\x09" + longstr(props) + longstr(mechanisms) + longstr(b"en_US")))
        try:
            conn.recv(4096)  # start-ok, when the client goes on
        except OSError:
            return
        conn.sendall(frame(amqp.CLOSE, struct.pack(">H", 403) + bytes([len(b"scripted close")])
                           + b"scripted close" + struct.pack(">HH", 10, 11)))


def login_against(mechanisms):
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        t = threading.Thread(target=peer, args=(srv, mechanisms), daemon=True)
        t.start()
        why = amqp.login(srv.getsockname()[1], timeout=5.0)
        t.join(5)
        return why


def main():
    bad = 0
    for mech, want in ((b"PLAIN AMQPLAIN", "403 scripted close"), (b"AMQPLAIN PLAIN", "403 scripted close"),
                       (b"AMQPLAIN", "mechanisms AMQPLAIN, not 0-9 with PLAIN")):
        why = login_against(mech)
        ok = why is not None and why.endswith(want)
        print(f"{'ok' if ok else 'FAIL'}: mechanisms {mech.decode()!r}: {why}")
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
