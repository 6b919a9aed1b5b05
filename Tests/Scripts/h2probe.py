#!/usr/bin/env python3
"""An HTTP/2 client for the tests, on python3-h2, whose flow control and stream count the
test decides. It prints one JSON object with what it saw.

  h2probe.py stall  PORT CAFILE  : two EventSources on one connection; one never gives the
                                   server flow-control credit; the other, and REST calls on the
                                   same connection, must carry on
  h2probe.py limit  PORT CAFILE  : opens the server's stream limit of EventSources, then one
                                   more than allowed
  h2probe.py h2c    PORT         : one REST call in cleartext HTTP/2 with prior knowledge

CAFILE "-" means cleartext HTTP/2 (h2c).
"""
import collections
import json
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

USER = [("x-user", "superuser"), ("x-password", "test-secret")]


class Client:
    def __init__(self, port, cafile=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        if cafile == "-":
            cafile = None
        if cafile:
            context = ssl.create_default_context(cafile=cafile)
            context.set_alpn_protocols(["h2"])
            self.sock = context.wrap_socket(raw, server_hostname="localhost")
            assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        else:
            self.sock = raw
        self.scheme = "https" if cafile else "http"
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.data = collections.defaultdict(bytes)
        self.status = {}
        self.reset = {}
        self.ended = set()
        self.stalled = set()
        self.remote_max_streams = None
        self.goaway = None

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def request(self, method, path, body=None, headers=()):
        stream = self.conn.get_next_available_stream_id()
        head = [(":method", method), (":path", path), (":scheme", self.scheme), (":authority", "localhost")]
        head += USER + list(headers)
        if body is not None:
            head.append(("content-type", "application/json"))
        self.conn.send_headers(stream, head, end_stream=body is None)
        if body is not None:
            self.conn.send_data(stream, body.encode(), end_stream=True)
        self.flush()
        return stream

    def pump(self, seconds, until=lambda: False):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            self.sock.settimeout(max(0.01, min(0.2, deadline - time.monotonic())))
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            if not chunk:
                break
            for event in self.conn.receive_data(chunk):
                self.handle(event)
            self.flush()

    def handle(self, event):
        if isinstance(event, h2.events.ResponseReceived):
            self.status[event.stream_id] = dict(event.headers).get(b":status", b"").decode()
        elif isinstance(event, h2.events.DataReceived):
            self.data[event.stream_id] += event.data
            if event.stream_id in self.stalled:
                # Credit for the connection only: this stream's window stays used up.
                self.conn.increment_flow_control_window(event.flow_controlled_length)
            else:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.reset[event.stream_id] = int(event.error_code)
        elif isinstance(event, h2.events.StreamEnded):
            self.ended.add(event.stream_id)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = int(event.error_code)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            changed = event.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
            if changed:
                self.remote_max_streams = changed.new_value

    def text(self, stream):
        return self.data[stream].decode(errors="replace")


def stall(port, cafile):
    c = Client(port, cafile)
    stalled = c.request("GET", "/structr/EventSource")
    c.stalled.add(stalled)
    healthy = c.request("GET", "/structr/EventSource")
    c.pump(20, lambda: "retry:" in c.text(stalled) and "retry:" in c.text(healthy))
    published = 0
    rest = []
    # Each call broadcasts 20 events of 4 KB: the stalled stream's 64 KB window is gone after
    # the first, and the server's queue bound after a few. The healthy stream is read up to
    # date before the next call, so its queue never holds more than one call's events however
    # slowly this client runs (a loaded CI machine let two calls pile up past the bound).
    for _ in range(10):
        call = c.request("POST", "/structr/rest/flood", body="{}")
        c.pump(20, lambda: call in c.ended or call in c.reset)
        rest.append(c.status.get(call))
        published += 20
        c.pump(20, lambda: c.text(healthy).count("event: flood") >= published or healthy in c.reset)
    c.pump(20, lambda: c.text(healthy).count("event: flood") >= published and stalled in c.reset)
    probe = c.request("GET", "/structr/rest/Item")
    c.pump(20, lambda: probe in c.ended)
    return {
        "published": published,
        "healthy": c.text(healthy).count("event: flood"),
        "stalled": c.text(stalled).count("event: flood"),
        "stalledReset": stalled in c.reset,
        "healthyReset": healthy in c.reset,
        "rest": rest,
        "afterwards": c.status.get(probe),
    }


def limit(port, cafile):
    c = Client(port, cafile)
    c.pump(20, lambda: c.remote_max_streams is not None and c.remote_max_streams < 100)
    allowed = c.remote_max_streams
    streams = [c.request("GET", "/structr/EventSource") for _ in range(allowed)]
    c.pump(20, lambda: all("retry:" in c.text(s) for s in streams))
    # Past the limit the server announced: a misbehaving client that ignores it.
    c.conn.remote_settings._settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = collections.deque([1000])
    extra = c.request("GET", "/structr/EventSource")
    c.pump(20, lambda: extra in c.reset or c.goaway is not None)
    # A new connection is served as before.
    again = Client(port, cafile)
    call = again.request("GET", "/structr/rest/Item")
    again.pump(20, lambda: call in again.ended)
    return {
        "allowed": allowed,
        "opened": sum(1 for s in streams if "retry:" in c.text(s) and s not in c.reset),
        "extraReset": c.reset.get(extra),
        "extraStatus": c.status.get(extra),
        "goaway": c.goaway,
        "again": again.status.get(call),
    }


def h2c(port):
    c = Client(port)
    call = c.request("GET", "/structr/rest/Item")
    c.pump(20, lambda: call in c.ended)
    return {"status": c.status.get(call), "body": c.text(call)}


if __name__ == "__main__":
    command, port = sys.argv[1], int(sys.argv[2])
    if command == "stall":
        result = stall(port, sys.argv[3])
    elif command == "limit":
        result = limit(port, sys.argv[3])
    else:
        result = h2c(port)
    print(json.dumps(result))
