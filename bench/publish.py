#!/usr/bin/python3
"""bench/publish.py: the benchmarks' AMQP publishers (python3-pika, Debian's /usr/bin/python3).

  publish.py requests URL INSTANCES_FILE TIMES_FILE [--rate R]
      one migration request (the public contract, no destination: "host": null) per line of
      INSTANCES_FILE (an instance name), persistent, on exchange `ferry`, key `scheduler`;
      as fast as the broker takes them, or R per second, with publisher confirms (exit 1
      unless the broker confirmed every one). Writes "<request id> <epoch s>" per request to
      TIMES_FILE, the time taken just before the publish. Prints the publish rate.

  publish.py heartbeats URL --hosts N --interval S --duration D [--domains K] [--prefix P]
      N simulated compute hosts, each publishing host.<P><n>.heartbeat on `ferry.events` every
      S seconds (spread evenly: N/S messages per second) for D seconds, with the body of
      compute-agent/RPC.md's heartbeat and K running domains each. Prints what it sent.

  publish.py queue-depth URL QUEUE
      "<ready messages> <consumers>" of QUEUE ("0 0" when it does not exist).
"""
import argparse
import datetime
import json
import sys
import time
import uuid

import pika


def connect(url):
    params = pika.URLParameters(url)
    params.heartbeat = 0
    params.blocked_connection_timeout = 300
    return pika.BlockingConnection(params)


def cmd_requests(a):
    with open(a.instances) as f:
        names = [line.strip() for line in f if line.strip()]
    msgs = []
    for n in names:
        rid = str(uuid.uuid4())
        body = {"v": 1, "type": "migration.request", "id": rid,
                "body": {"instance": n,
                         "os-migrateLive": {"host": None, "block_migration": False,
                                            "disk_over_commit": False, "post_copy": False}}}
        msgs.append((rid, json.dumps(body, separators=(",", ":")).encode()))
    # Publisher confirms, waited for before the connection closes: a quorum queue can drop
    # messages that were published unconfirmed on a channel closed right after them (seen
    # here: 3 of 40, and once 32 of 40, gone). The publishes do not wait for each other: the
    # confirms come back while the next ones go out, so the burst stays a burst.
    props = pika.BasicProperties(content_type="application/json", delivery_mode=2)
    gap = 1.0 / a.rate if a.rate else 0.0
    st = {"times": [], "confirmed": 0, "nacked": 0, "error": None, "t0": 0.0, "t1": 0.0, "ch": None, "closing": False}
    params = pika.URLParameters(a.url)
    params.heartbeat = 0

    def finish(conn, error=None):
        if error and not st["error"] and not st["closing"]:
            st["error"] = error
        st["closing"] = True
        if conn.is_open:
            conn.close()

    outstanding = set()  # delivery tags published and not yet confirmed

    def on_confirm(frame):
        m = frame.method
        done = [t for t in outstanding if t <= m.delivery_tag] if m.multiple else [m.delivery_tag]
        for t in done:
            outstanding.discard(t)
        key = "nacked" if isinstance(m, pika.spec.Basic.Nack) else "confirmed"
        st[key] += len(done)
        if len(st["times"]) == len(msgs) and not outstanding:
            st["t1"] = time.time()
            finish(conn)

    def publish_next(i):
        # paced: one at its time; burst: 200 at a time, the loop reads confirms in between
        stop = min(len(msgs), i + (1 if gap else 200))
        while i < stop:
            if gap:
                due = st["t0"] + i * gap
                now = time.time()
                if due > now:
                    conn.ioloop.call_later(due - now, lambda: publish_next(i))
                    return
            rid, body = msgs[i]
            t = time.time()
            st["ch"].basic_publish("ferry", "scheduler", body, props)
            st["times"].append((rid, t))
            i += 1
            outstanding.add(i)  # tags count from 1
        if i < len(msgs):
            conn.ioloop.call_later(0, lambda: publish_next(i))

    def on_confirm_mode(_frame):
        st["t0"] = time.time()
        if not msgs:
            finish(conn)
            return
        publish_next(0)

    def on_channel(ch):
        st["ch"] = ch
        ch.add_on_close_callback(lambda _ch, reason: finish(conn, "channel closed: %s" % reason))
        ch.confirm_delivery(on_confirm, callback=on_confirm_mode)

    conn = pika.SelectConnection(
        params, on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
        on_open_error_callback=lambda c, e: (st.__setitem__("error", "could not connect to %s: %r" % (a.url, e)), c.ioloop.stop()),
        on_close_callback=lambda c, reason: c.ioloop.stop())
    conn.ioloop.call_later(600, lambda: finish(conn, "no confirms after 600 s"))
    conn.ioloop.start()
    if st["error"] or st["confirmed"] != len(msgs):
        print("publish.py: %d of %d requests confirmed by the broker, %d refused (nack)%s" %
              (st["confirmed"], len(msgs), st["nacked"], ": " + str(st["error"]) if st["error"] else ""),
              file=sys.stderr)
        return 1
    with open(a.times, "w") as f:
        for rid, t in st["times"]:
            f.write("%s %.6f\n" % (rid, t))
    t0, t1 = st["t0"], st["t1"]
    print("published %d requests in %.2f s (%.0f/s), all confirmed by the broker" %
          (len(msgs), t1 - t0, len(msgs) / max(t1 - t0, 1e-9)))
    return 0


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cmd_heartbeats(a):
    hosts = ["%s%05d" % (a.prefix, i + 1) for i in range(a.hosts)]
    domains = {}
    for h in hosts:
        domains[h] = [{"uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, "%s.d%d" % (h, k))),
                       "name": "%s-vm%d" % (h, k), "vcpus": 1, "memory_mb": 512, "disk_gb": 1,
                       "state": "running", "persistent": True, "project": "bench"}
                      for k in range(a.domains)]
    conn = connect(a.url)
    ch = conn.channel()
    # the scheduler believes a heartbeat only from a sender the broker vouches for (user_id):
    # the simulated hosts publish as the URL's user, which footprint.sh names a scheduler user
    user = pika.URLParameters(a.url).credentials.username
    props = pika.BasicProperties(content_type="application/json", delivery_mode=1, user_id=user)
    per_s = a.hosts / a.interval
    gap = 1.0 / per_s
    total = int(a.duration * per_s)
    t0 = time.time()
    for i in range(total):
        due = t0 + i * gap
        now = time.time()
        if due > now:
            time.sleep(due - now)
        h = hosts[i % a.hosts]
        body = {"host": h, "address": "10.77.%d.%d" % ((i % a.hosts) // 250, (i % a.hosts) % 250 + 1),
                "vcpus": 32, "memory_mb": 65536, "free_memory_mb": 32768, "disk_gb": 1000,
                "disk_free_gb": 900, "arch": "x86_64", "cpu_model": "Skylake-Server-IBRS",
                "cpu_xml": "<cpu><arch>x86_64</arch><model>Skylake-Server-IBRS</model></cpu>",
                "hypervisor": "qemu", "libvirt_version": "9.0.0", "qemu_version": "7.2.0",
                "postcopy": True, "instances_path": "/var/lib/ferry/instances",
                "domains": domains[h], "at": rfc3339(now), "origin": "agent"}
        env = {"v": 1, "type": "host.%s.heartbeat" % h, "id": str(uuid.uuid4()), "sent_at": rfc3339(now),
               "body": body}
        ch.basic_publish("ferry.events", "host.%s.heartbeat" % h,
                         json.dumps(env, separators=(",", ":")).encode(), props)
        if i % 50 == 0:
            conn.process_data_events(0)
    conn.close()
    t1 = time.time()
    print("sent %d heartbeats of %d hosts in %.1f s (%.0f/s)" % (total, a.hosts, t1 - t0, total / (t1 - t0)))


def cmd_queue_depth(a):
    conn = connect(a.url)
    ch = conn.channel()
    try:
        m = ch.queue_declare(a.queue, passive=True).method
        print(m.message_count, m.consumer_count)
    except pika.exceptions.ChannelClosedByBroker:
        print(0, 0)
    conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("requests")
    r.add_argument("url")
    r.add_argument("instances")
    r.add_argument("times")
    r.add_argument("--rate", type=float, default=0)
    h = sub.add_parser("heartbeats")
    h.add_argument("url")
    h.add_argument("--hosts", type=int, default=1000)
    h.add_argument("--interval", type=float, default=10)
    h.add_argument("--duration", type=float, default=60)
    h.add_argument("--domains", type=int, default=4)
    h.add_argument("--prefix", default="sim")
    q = sub.add_parser("queue-depth")
    q.add_argument("url")
    q.add_argument("queue")
    a = p.parse_args()
    return {"requests": cmd_requests, "heartbeats": cmd_heartbeats, "queue-depth": cmd_queue_depth}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
