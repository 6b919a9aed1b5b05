#!/usr/bin/python3
"""Runs the benchmark scenarios against Herald and its peers in one invocation.

Peers: nginx with Nchan, a plain Node.js SSE server (bench/peers/node-sse.js) and sseload's own
trivial server, which shows the load generator's ceiling. Every server is started fresh for each
scenario, on a free loopback port, and measured by the same generator (bench/loadgen/sseload.c).

Writes bench/results/latest.json, bench/results/latest.md and bench/results/fanout.png.
Usage: run.py --herald BIN --sseload BIN [--quick] [--only herald,nchan,...]
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    except OSError:
        return []


class Server:
    """One server under test: how to start it and where its streams and publishers are."""

    name = ""
    label = ""
    # Paths: broadcast stream and publish; a user's stream and the publish to that user.
    stream_path = ""
    publish_path = ""
    user_stream_path = ""
    user_publish_path = ""
    publish_body = '{"t":%T,"s":%S}'
    # Streams per HTTP/2 connection (h2c); 0: HTTP/1.1, one connection per stream.
    h2 = 0

    def __init__(self, args):
        self.args = args
        self.proc = None
        self.dir = None
        self.port = None

    def command(self):
        raise NotImplementedError

    def env(self):
        return dict(os.environ)

    def start(self):
        self.dir = tempfile.mkdtemp(prefix=f"bench-{self.name}-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen(
            self.command(), cwd=self.dir, env=self.env(), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.port)
        time.sleep(0.3)
        self.after_start()

    def after_start(self):
        pass

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def stream_headers(self):
        return []

    def user_headers(self):
        return []

    def publish_headers(self):
        return []

    def user_publish_headers(self):
        return []

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Herald(Server):
    name = "herald"
    label = "Herald"
    stream_path = "/structr/EventSource"
    publish_path = "/structr/rest/benchPublish"
    user_stream_path = "/structr/EventSource"
    user_publish_path = "/structr/rest/benchSend"

    def command(self):
        return [
            self.args.herald, "serve", "--schema", os.path.join(ROOT, "bench", "schema"),
            "--data", os.path.join(self.dir, "data"), "--port", str(self.port),
            "--public", os.path.join(self.dir, "no-public"),
        ]

    def env(self):
        env = dict(os.environ)
        env["HERALD_LOG_LEVEL"] = "warning"
        return env

    def after_start(self):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/structr/rest/login",
            data=json.dumps({"name": "bench", "password": "bench-password"}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request) as response:
            cookie = response.headers["Set-Cookie"].split(";")[0]
        self.cookie = f"Cookie: {cookie}"

    def user_headers(self):
        return [self.cookie]

    def user_publish_headers(self):
        return [self.cookie]


class HeraldBaseline(Herald):
    """The commit a change started from (--baseline), built into .build-baseline: the same
    scenarios in the same invocation, so a change is reported as a ratio."""
    name = "herald-baseline"
    label = "Herald (baseline)"

    def command(self):
        command = super().command()
        command[0] = self.args.baseline
        return command


class HeraldH2(Herald):
    """The same Herald with h2c next to HTTP/1.1; its streams are HTTP/2 streams, 100 per connection."""
    name = "herald-h2"
    label = "Herald (h2c)"
    h2 = 100

    def env(self):
        env = super().env()
        env["HERALD_HTTP2_CLEARTEXT"] = "true"
        return env


class HeraldPostgreSQL(Herald):
    """The same Herald on PostgreSQL: a throwaway server (scripts/postgres) started with it."""
    name = "herald-pg"
    label = "Herald (PostgreSQL)"

    def start(self):
        self.pg_dir = tempfile.mkdtemp(prefix="bench-postgres-")
        url = subprocess.run([os.path.join(ROOT, "scripts", "postgres"), "start", self.pg_dir],
                             check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run(["psql", "-X", "-q", url, "-c", "CREATE DATABASE bench"], check=True)
        self.database = url.rsplit("/", 1)[0] + "/bench"
        try:
            super().start()
        except BaseException:
            # Herald did not start (a wrong binary path, say): the PostgreSQL server goes too.
            subprocess.run([os.path.join(ROOT, "scripts", "postgres"), "stop", self.pg_dir], check=False)
            raise

    def command(self):
        return super().command() + ["--database", self.database]

    def pids(self):
        # PostgreSQL's processes do the database's share of the work: count their CPU too.
        with open(os.path.join(self.pg_dir, "data", "postmaster.pid")) as f:
            postmaster = int(f.readline())
        return super().pids() + [postmaster] + children(postmaster)

    def stop(self):
        super().stop()
        subprocess.run([os.path.join(ROOT, "scripts", "postgres"), "stop", self.pg_dir], check=False)


class HeraldCluster(HeraldPostgreSQL):
    """Three Herald nodes on one PostgreSQL database; streams spread over them, publishes to the first."""
    name = "herald-cluster"
    label = "Herald (3 nodes, PostgreSQL)"
    nodes = 3

    def start(self):
        super().start()
        self.extra = []
        self.ports = [self.port]
        for n in range(1, self.nodes):
            port = free_port()
            command = [a for a in self.command()]
            command[command.index("--port") + 1] = str(port)
            command[command.index("--data") + 1] = os.path.join(self.dir, f"data-{n}")
            proc = subprocess.Popen(command, cwd=self.dir, env=self.env(), stdout=self.log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            self.extra.append(proc)
            self.ports.append(port)
            wait_for_port(port)
        time.sleep(0.5)

    def pids(self):
        pids = super().pids()
        for proc in self.extra:
            pids += [proc.pid] + children(proc.pid)
        return pids

    def stop(self):
        for proc in self.extra:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        super().stop()


class Nchan(Server):
    name = "nchan"
    label = "nginx + Nchan"
    stream_path = "/sub/all"
    publish_path = "/pub/all"
    user_stream_path = "/sub/bench"
    user_publish_path = "/pub/bench"

    def command(self):
        with open(os.path.join(ROOT, "bench", "peers", "nchan.conf.template")) as f:
            conf = f.read().replace("@PORT@", str(self.port))
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        with open(os.path.join(self.dir, "nchan.conf"), "w") as f:
            f.write(conf)
        return ["nginx", "-p", self.dir, "-c", "nchan.conf"]


class Node(Server):
    name = "node"
    label = "Node.js (plain http)"
    stream_path = "/events"
    publish_path = "/publish"
    user_stream_path = "/events?user=bench"
    user_publish_path = "/publish?user=bench"

    def command(self):
        return ["node", os.path.join(ROOT, "bench", "peers", "node-sse.js"), str(self.port)]


class Trivial(Server):
    name = "trivial"
    label = "trivial C server (generator ceiling)"
    stream_path = "/sub/all"
    publish_path = "/pub/all"
    user_stream_path = "/sub/bench"
    user_publish_path = "/pub/bench"

    def command(self):
        return [self.args.sseload, "serve", "--port", str(self.port)]


def sseload(args, server, streams, path=None, headers=(), target_path=None, target_headers=(), target_streams=0,
            pub_path=None, pub_headers=(), pub_body=None, rates=(), step=2.0, drain=2.0, hold=0.0, slow=0,
            publishers=4, expect_per_publish=None, variants=0, ready_event=None, ports=None, pub_port=None):
    cmd = [args.sseload, "run", "--port", str(server.port), "--path", path or server.stream_path,
           "--streams", str(streams), "--pid", ",".join(str(p) for p in server.pids()),
           "--step-seconds", str(step), "--drain-seconds", str(drain), "--hold-seconds", str(hold),
           "--publishers", str(publishers)]
    for h in headers:
        cmd += ["--header", h]
    if target_streams:
        cmd += ["--target-path", target_path, "--target-streams", str(target_streams)]
        for h in target_headers:
            cmd += ["--target-header", h]
    if slow:
        cmd += ["--slow", str(slow)]
    if pub_path and rates:
        cmd += ["--pub-path", pub_path, "--rates", ",".join(str(r) for r in rates),
                "--pub-body", pub_body or server.publish_body]
        for h in pub_headers:
            cmd += ["--pub-header", h]
    if expect_per_publish is not None:
        cmd += ["--expect-per-publish", str(expect_per_publish)]
    if server.h2:
        cmd += ["--h2", str(server.h2)]
    if variants:
        cmd += ["--variants", str(variants)]
    if ready_event:
        cmd += ["--ready-event", ready_event]
    if ports:
        cmd += ["--ports", ",".join(str(p) for p in ports)]
    if pub_port:
        cmd += ["--pub-port", str(pub_port)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"sseload failed ({out.returncode}): {out.stderr[-2000:]}")
    if out.stderr.strip():
        print("  sseload: " + out.stderr.strip().splitlines()[0], file=sys.stderr)
    return json.loads(out.stdout)


def with_server(cls, args, fn):
    server = cls(args)
    server.start()
    try:
        return fn(server)
    finally:
        server.stop()


# ---- scenarios ----

def scenario_idle(args, cls, size):
    def run(server):
        r = sseload(args, server, size["idle"], headers=server.stream_headers(), hold=3.0)
        grown = r["server_rss_held_kb"] - r["server_rss_before_kb"]
        return {
            "streams": r["streams"], "connected": r["connected"], "failed": r["failed"],
            "connect_all_ms": r["connect_ms"], "connect_10k_ms": r["connect_10k_ms"],
            "rss_before_kb": r["server_rss_before_kb"], "rss_held_kb": r["server_rss_held_kb"],
            "kb_per_stream": round(grown / max(1, r["connected"]), 2),
        }
    return with_server(cls, args, run)


def sustained(steps, limit_us=50_000):
    """The highest step whose p99 stayed under the limit with every delivery made."""
    best = None
    for s in steps:
        ok = (s["p99_us"] < limit_us and s["received"] >= s["expected"] * 0.999 and s["expected"] > 0
              and s["publishes_per_s"] >= s["rate"] * 0.95)
        if ok and (best is None or s["deliveries_per_s"] > best["deliveries_per_s"]):
            best = s
    return best


def scenario_fanout(args, cls, size):
    results = []
    for subscribers in size["fanout_subscribers"]:
        rates = [round(d / subscribers, 2) for d in size["fanout_deliveries"]]

        def run(server):
            return sseload(args, server, subscribers, headers=server.stream_headers(), pub_path=server.publish_path,
                           pub_headers=server.publish_headers(), rates=rates, step=size["step"], drain=1.5)
        r = with_server(cls, args, run)
        best = sustained(r["steps"])
        reference = next((s for s in r["steps"] if s["rate"] * subscribers >= size["reference_load"] - 1), r["steps"][0])
        results.append({
            "subscribers": subscribers, "connected": r["connected"],
            "max_deliveries_per_s": best["deliveries_per_s"] if best else 0,
            "p99_at_max_ms": best["p99_us"] / 1000 if best else None,
            "reference_load": size["reference_load"],
            "p99_at_reference_ms": reference["p99_us"] / 1000,
            "steps": [{k: s[k] for k in ("rate", "publishes_per_s", "deliveries_per_s", "received", "expected",
                                          "p50_us", "p99_us", "max_us", "server_cpu_s")} for s in r["steps"]],
        })
    return results


def scenario_burst(args, cls, size):
    def run(server):
        r = sseload(args, server, size["burst_subscribers"], headers=server.stream_headers(),
                    pub_path=server.publish_path, pub_headers=server.publish_headers(), rates=[size["burst_rate"]],
                    step=size["burst_count"] / size["burst_rate"], drain=3)
        s = r["steps"][0]
        return {"subscribers": r["connected"], "publishes": s["published"], "incomplete": s["incomplete_publishes"],
                "last_subscriber_p50_ms": s["last_p50_us"] / 1000, "last_subscriber_p99_ms": s["last_p99_us"] / 1000,
                "last_subscriber_max_ms": s["last_max_us"] / 1000}
    return with_server(cls, args, run)


def scenario_targeted(args, cls, size):
    out = {}
    for background in size["targeted_streams"]:
        def run(server):
            r = sseload(args, server, background, headers=server.stream_headers(),
                        target_path=server.user_stream_path, target_headers=server.user_headers(), target_streams=1,
                        pub_path=server.user_publish_path, pub_headers=server.user_publish_headers(),
                        rates=[size["targeted_rate"]], step=size["step"] * 2, drain=1, expect_per_publish=1)
            s = r["steps"][0]
            return {"streams_open": r["connected"], "sends": s["published"], "received": s["received"],
                    "server_cpu_us_per_send": round(s["server_cpu_s"] * 1e6 / max(1, s["published"]), 1),
                    "p50_ms": s["p50_us"] / 1000, "p99_ms": s["p99_us"] / 1000}
        out[str(background)] = with_server(cls, args, run)
    few, many = (out[str(n)] for n in size["targeted_streams"])
    out["cost_ratio"] = round(many["server_cpu_us_per_send"] / max(0.1, few["server_cpu_us_per_send"]), 2)
    return out


def scenario_full_stack(args, cls, size, subscribers=None):
    subscribers = subscribers or size["full_subscribers"]

    def run(server):
        body = '{"payload":"{\\"t\\":%T,\\"s\\":%S}"}'
        common = dict(headers=server.stream_headers(), pub_path="/structr/rest/BenchItem",
                      pub_headers=server.user_publish_headers(), pub_body=body, step=size["step"] * 1.5,
                      publishers=8, drain=2)
        peak = sseload(args, server, subscribers, rates=[0], **common)["steps"][0]
        half = max(1, round(peak["publishes_per_s"] / 2))
        steady = sseload(args, server, subscribers, rates=[half], **common)["steps"][0]
        return {"subscribers": subscribers, "max_creates_per_s": peak["publishes_per_s"],
                "create_errors": peak["publish_errors"] + steady["publish_errors"],
                "half_rate": half, "post_to_event_p50_ms": steady["p50_us"] / 1000,
                "post_to_event_p99_ms": steady["p99_us"] / 1000, "received": steady["received"],
                "expected": steady["expected"]}
    return with_server(cls, args, run)


def scenario_slow(args, cls, size):
    if cls.h2:
        # An HTTP/2 stream stalls by flow control, not a full socket: the generator's --slow
        # models the latter; the HTTP/2 case is the suite's stalled-stream test.
        return {"skipped": "slow readers are modelled for HTTP/1.1 only"}
    healthy = size["slow_streams"]
    pad = "x" * 1024
    body = '{"t":%T,"s":%S,"pad":"' + pad + '"}'

    def run(slow):
        # Two steps at the same rate: in the first the slow readers stop reading and their socket
        # buffers fill; the second is next to readers that have stalled, the figure compared.
        def inner(server):
            r = sseload(args, server, healthy + slow, headers=server.stream_headers(), slow=slow,
                        pub_path=server.publish_path, pub_headers=server.publish_headers(), pub_body=body,
                        rates=[size["slow_rate"]] * 2, step=size["step"] * 2, drain=2, expect_per_publish=healthy)
            first, s = r["steps"]
            return {"healthy_p50_ms": s["p50_us"] / 1000, "healthy_p99_ms": s["p99_us"] / 1000,
                    "first_step_p99_ms": first["p99_us"] / 1000,
                    "received": s["received"], "expected": s["expected"], "rss_before_kb": r["server_rss_held_kb"],
                    "rss_max_kb": r["server_rss_max_kb"], "kernel_queued_kb": r["server_send_queue_kb"],
                    "streams_closed": first["streams_closed"] + s["streams_closed"]}
        return with_server(cls, args, inner)
    # Alternating runs, the median of each kind: one run each is at the mercy of this machine.
    runs = [(run(0), run(healthy)) for _ in range(size["slow_rounds"])]

    def median_run(kind):
        ordered = sorted((pair[kind] for pair in runs), key=lambda r: r["healthy_p99_ms"])
        return ordered[len(ordered) // 2]
    alone, mixed = median_run(0), median_run(1)
    return {"healthy": healthy, "slow": healthy, "rounds": len(runs), "without_slow": alone, "with_slow": mixed,
            "p99_ratio": round(mixed["healthy_p99_ms"] / max(0.001, alone["healthy_p99_ms"]), 2),
            "rss_growth_kb": max(pair[1]["rss_max_kb"] - pair[1]["rss_before_kb"] for pair in runs),
            "kernel_queued_kb": max(pair[1]["kernel_queued_kb"] for pair in runs),
            "slow_streams_closed": mixed["streams_closed"]}


def scenario_live(args, cls, size):
    """Live queries against a plain broadcast of the same payloads to the same number of streams,
    at the same rate of writes: one query followed by every stream, then the streams spread over
    many distinct queries (each write matches one of them). The three alternate, `live_rounds`
    times; the median of each is reported."""
    streams, queries, rate = size["live_streams"], size["live_queries"], size["live_rate"]

    def once(path, pub_path, body, variants, expect, ready=None):
        def run(server):
            r = sseload(args, server, streams, path=path, headers=server.stream_headers(), pub_path=pub_path,
                        pub_headers=server.user_publish_headers(), pub_body=body, rates=[rate], step=size["step"] * 2,
                        drain=2, expect_per_publish=expect, variants=variants, ready_event=ready)
            s = r["steps"][0]
            return {"streams": r["connected"], "changes": s["published"], "received": s["received"],
                    "expected": s["expected"], "p50_ms": s["p50_us"] / 1000, "p99_ms": s["p99_us"] / 1000,
                    "server_cpu_us_per_change": round(s["server_cpu_s"] * 1e6 / max(1, s["published"]), 1)}
        return with_server(cls, args, run)

    kinds = {
        "broadcast": lambda: once(cls.stream_path, "/structr/rest/benchPublish", '{"t":%T,"s":%S}', 0, streams),
        "one_query": lambda: once("/structr/rest/LiveItem?q=0", "/structr/rest/LiveItem",
                                  '{"t":%T,"s":%S,"q":0,"visibleToPublicUsers":true}', 0, streams, "snapshot"),
        "many_queries": lambda: once("/structr/rest/LiveItem?q=%K", "/structr/rest/LiveItem",
                                     '{"t":%T,"s":%S,"q":%K,"visibleToPublicUsers":true}', queries, streams // queries,
                                     "snapshot"),
    }
    runs = {kind: [] for kind in kinds}
    for _ in range(size["live_rounds"]):
        for kind, fn in kinds.items():
            runs[kind].append(fn())
    out = {"streams": streams, "queries": queries, "writes_per_s": rate, "rounds": size["live_rounds"]}
    for kind, results in runs.items():
        ordered = sorted(results, key=lambda r: r["p99_ms"])
        out[kind] = dict(ordered[len(ordered) // 2], p99_range_ms=[ordered[0]["p99_ms"], ordered[-1]["p99_ms"]])
    out["one_query_p99_ratio"] = round(out["one_query"]["p99_ms"] / max(0.001, out["broadcast"]["p99_ms"]), 2)
    out["many_queries_p99_ratio"] = round(out["many_queries"]["p99_ms"] / max(0.001, out["broadcast"]["p99_ms"]), 2)
    return out


def scenario_cluster(args, size):
    """Fan-out with the subscribers spread over 3 nodes against 1 node with the same total, and
    publish on one node, receive on another: p99 against the same node, at half the most the
    single node sustains."""
    subscribers, rates = size["cluster_subscribers"], size["cluster_rates"]
    out = {}

    def fanout(server, ports):
        r = sseload(args, server, subscribers, headers=server.stream_headers(), pub_path=server.publish_path,
                    pub_headers=server.publish_headers(), rates=rates, step=size["step"], drain=1.5, ports=ports)
        best = sustained(r["steps"])
        return {"connected": r["connected"], "max_deliveries_per_s": best["deliveries_per_s"] if best else 0,
                "steps": [{k: st[k] for k in ("rate", "deliveries_per_s", "received", "expected", "p50_us",
                                               "p99_us", "server_cpu_s")} for st in r["steps"]]}
    out["fanout_1_node"] = with_server(HeraldPostgreSQL, args, lambda server: fanout(server, None))
    out["fanout_3_nodes"] = with_server(HeraldCluster, args, lambda server: fanout(server, server.ports))
    best = max((st["rate"] for st in out["fanout_1_node"]["steps"] if st["received"] >= st["expected"] * 0.999
                and st["p99_us"] < 50_000), default=rates[0])
    half = max(1, round(best / 2))

    def latency(server, ports, pub_port):
        r = sseload(args, server, size["cluster_latency_streams"], headers=server.stream_headers(),
                    pub_path=server.publish_path, pub_headers=server.publish_headers(), rates=[half],
                    step=size["step"] * 2, drain=1.5, ports=ports, pub_port=pub_port)
        st = r["steps"][0]
        return {"rate": half, "received": st["received"], "expected": st["expected"],
                "p50_ms": st["p50_us"] / 1000, "p99_ms": st["p99_us"] / 1000}

    def cross(server):
        return {"same_node": latency(server, [server.ports[0]], server.ports[0]),
                "other_node": latency(server, [server.ports[1]], server.ports[0])}
    out["latency"] = with_server(HeraldCluster, args, cross)
    out["latency"]["added_p99_ms"] = round(out["latency"]["other_node"]["p99_ms"] - out["latency"]["same_node"]["p99_ms"], 2)
    return out


def generator_ceiling(args, size):
    """How fast sseload parses: the trivial server writes 100 events at a time, as fast as it can."""
    def run(server):
        r = sseload(args, server, size["ceiling_streams"], pub_path=server.publish_path + "?copies=100",
                    rates=[0], step=size["step"] * 2, drain=2, publishers=1,
                    expect_per_publish=size["ceiling_streams"] * 100)
        s = r["steps"][0]
        return {"streams": r["connected"], "events_per_s": s["received"] / (size["step"] * 2),
                "p99_ms": s["p99_us"] / 1000, "received": s["received"], "sent": s["expected"]}
    return with_server(Trivial, args, run)


SIZES = {
    "full": dict(idle=15000, fanout_subscribers=[1000, 5000, 10000],
                 fanout_deliveries=[50000, 100000, 150000, 200000, 250000, 300000], reference_load=50000,
                 step=2.0, burst_subscribers=10000, burst_count=100, burst_rate=5, targeted_streams=[100, 10000],
                 targeted_rate=200, full_subscribers=1000, slow_streams=1000, slow_rate=50, slow_rounds=3,
                 ceiling_streams=1000, ceiling_rate=10, live_streams=1000, live_queries=100, live_rate=200,
                 live_rounds=3, cluster_subscribers=3000, cluster_rates=[10, 20, 40, 60],
                 cluster_latency_streams=300),
    "quick": dict(idle=1000, fanout_subscribers=[200, 1000], fanout_deliveries=[20000, 50000],
                  reference_load=20000, step=1.0, burst_subscribers=1000, burst_count=20, burst_rate=10,
                  targeted_streams=[10, 1000], targeted_rate=100, full_subscribers=100, slow_streams=100,
                  slow_rate=20, slow_rounds=1, ceiling_streams=100, ceiling_rate=5, live_streams=200,
                  live_queries=20, live_rate=50, live_rounds=1, cluster_subscribers=300, cluster_rates=[20, 50],
                  cluster_latency_streams=30),
}

SERVERS = {"herald": Herald, "herald-baseline": HeraldBaseline, "herald-h2": HeraldH2, "herald-pg": HeraldPostgreSQL, "nchan": Nchan, "node": Node,
           "trivial": Trivial}


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(mem_kb / 1048576, 1),
            "kernel": platform.release(), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--herald", required=True)
    parser.add_argument("--sseload", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="herald,herald-h2,nchan,node,trivial")
    parser.add_argument("--scenarios",
                        default="ceiling,idle,fanout,burst,targeted,full-stack,creates-1,slow,live,postgresql,cluster")
    parser.add_argument("--output", default=RESULTS)
    parser.add_argument("--baseline", help="a herald binary of the commit a change started from; "
                        "adds the herald-baseline column")
    args = parser.parse_args()
    args.herald = os.path.abspath(args.herald)
    args.sseload = os.path.abspath(args.sseload)
    size = SIZES["quick" if args.quick else "full"]
    servers = [s for s in args.only.split(",") if s]
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
        at = servers.index("herald") + 1 if "herald" in servers else 0
        servers.insert(at, "herald-baseline")
    scenarios = args.scenarios.split(",")
    results = {"mode": "quick" if args.quick else "full", "machine": machine(), "servers": {}, "scenarios": {}}
    for name in servers:
        results["servers"][name] = SERVERS[name].label

    def record(scenario, name, fn):
        print(f"- {scenario}: {name} ...", file=sys.stderr, flush=True)
        started = time.time()
        try:
            value = fn()
        except Exception as error:  # a peer failing is reported, not fatal
            value = {"error": str(error)}
        results["scenarios"].setdefault(scenario, {})[name] = value
        print(f"  {json.dumps(value)[:300]} ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)

    if "ceiling" in scenarios:
        record("generator-ceiling", "trivial", lambda: generator_ceiling(args, size))
    for scenario, fn in [("idle", scenario_idle), ("fanout", scenario_fanout), ("burst", scenario_burst),
                         ("targeted", scenario_targeted), ("slow", scenario_slow)]:
        if scenario not in scenarios:
            continue
        for name in servers:
            record(scenario, name, lambda: fn(args, SERVERS[name], size))
    if "full-stack" in scenarios and "herald" in servers:
        record("full-stack", "herald", lambda: scenario_full_stack(args, Herald, size))
    if "creates-1" in scenarios and "herald" in servers:
        record("creates-1", "herald", lambda: scenario_full_stack(args, Herald, size, subscribers=1))
        if args.baseline:
            record("creates-1", "herald-baseline",
                   lambda: scenario_full_stack(args, HeraldBaseline, size, subscribers=1))
    if "live" in scenarios and "herald" in servers:
        record("live", "herald", lambda: scenario_live(args, Herald, size))
    # PostgreSQL against SQLite, in the same invocation: creates with a hook, and a targeted send.
    if "postgresql" in scenarios:
        for cls in (Herald, HeraldPostgreSQL):
            record("pg-creates-1", cls.name, lambda: scenario_full_stack(args, cls, size, subscribers=1))
            record("pg-targeted", cls.name, lambda: scenario_targeted(args, cls, size))
    if "cluster" in scenarios:
        record("cluster", "herald-cluster", lambda: scenario_cluster(args, size))

    os.makedirs(args.output, exist_ok=True)
    prefix = "quick" if args.quick else "latest"
    with open(os.path.join(args.output, f"{prefix}.json"), "w") as f:
        json.dump(results, f, indent=1)
    markdown = report(results, size)
    with open(os.path.join(args.output, f"{prefix}.md"), "w") as f:
        f.write(markdown)
    plot(results, os.path.join(args.output, f"{prefix}-fanout.png"))
    print(markdown)


def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, (int, float)):
        return f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"
    return str(v)


def report(results, size):
    m = results["machine"]
    s = results["scenarios"]
    names = [n for n in results["servers"]]
    lines = [f"Measured {m['date']} on {m['cpus']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']};"
             f" generator and server share the machine. Mode: {results['mode']}.", ""]

    def row(label, values, target=""):
        lines.append(f"| {label} | " + " | ".join(values) + f" | {target} |")

    lines.append("| scenario | " + " | ".join(results["servers"][n] for n in names) + " | target (Herald) |")
    lines.append("|---|" + "---|" * len(names) + "---|")

    def cell(scenario, name, fn):
        v = s.get(scenario, {}).get(name)
        if v is None:
            return "–"
        if "error" in v:
            return "failed"
        try:
            return fn(v)
        except (KeyError, TypeError, ZeroDivisionError):
            return "–"

    row(f"idle: KB per stream ({size['idle']:,} streams)",
        [cell("idle", n, lambda v: f"{v['kb_per_stream']:.1f}") for n in names], "≤ 10")
    row("idle: ms until 10,000 connected" if size["idle"] >= 10000 else f"idle: ms until {size['idle']:,} connected",
        [cell("idle", n, lambda v: fmt(v["connect_10k_ms"] if v["connect_10k_ms"] > 0 else v["connect_all_ms"])) for n in names],
        "≤ 3,000")
    for i, subs in enumerate(size["fanout_subscribers"]):
        row(f"fan-out {subs:,} subscribers: deliveries/s at p99 < 50 ms",
            [cell("fanout", n, lambda v: fmt(round(v[i]["max_deliveries_per_s"]))) for n in names],
            "≥ 150,000 and ≥ Nchan" if subs == 10000 else "")
    for i, subs in enumerate(size["fanout_subscribers"]):
        row(f"fan-out {subs:,} subscribers: p99 ms at {size['reference_load']:,} deliveries/s",
            [cell("fanout", n, lambda v: fmt(v[i]["p99_at_reference_ms"])) for n in names])
    row(f"burst: p99 ms until the last of {size['burst_subscribers']:,} has it",
        [cell("burst", n, lambda v: fmt(v["last_subscriber_p99_ms"])) for n in names], "≤ 100")
    few, many = size["targeted_streams"]
    row(f"targeted: server CPU µs per send, {few:,} streams open",
        [cell("targeted", n, lambda v: fmt(v[str(few)]["server_cpu_us_per_send"])) for n in names])
    row(f"targeted: server CPU µs per send, {many:,} streams open",
        [cell("targeted", n, lambda v: fmt(v[str(many)]["server_cpu_us_per_send"])) for n in names])
    row(f"targeted: cost ratio {many:,} / {few:,} streams",
        [cell("targeted", n, lambda v: fmt(v["cost_ratio"], 2)) for n in names], "≤ 2")
    row(f"slow readers: healthy p99 ms, {size['slow_streams']:,} healthy alone (second step)",
        [cell("slow", n, lambda v: fmt(v["without_slow"]["healthy_p99_ms"])) for n in names])
    row(f"slow readers: healthy p99 ms while {size['slow_streams']:,} stop reading (first step)",
        [cell("slow", n, lambda v: fmt(v["with_slow"]["first_step_p99_ms"])) for n in names])
    row(f"slow readers: healthy p99 ms next to {size['slow_streams']:,} stalled (second step)",
        [cell("slow", n, lambda v: fmt(v["with_slow"]["healthy_p99_ms"])) for n in names])
    row("slow readers: p99 ratio", [cell("slow", n, lambda v: fmt(v["p99_ratio"], 2)) for n in names], "≤ 1.2")
    row("slow readers: server memory growth MB",
        [cell("slow", n, lambda v: fmt(v["rss_growth_kb"] / 1024)) for n in names], "bounded")
    row("slow readers: kernel send queues MB after the steps (not in RSS)",
        [cell("slow", n, lambda v: fmt(v["kernel_queued_kb"] / 1024)) for n in names], "bounded")
    fs = s.get("full-stack", {}).get("herald")
    if fs and "error" not in fs:
        lines += ["", f"Through the whole stack (Herald only): REST creates whose `afterCreate` broadcasts to "
                  f"{fs['subscribers']:,} subscribers: **{fmt(round(fs['max_creates_per_s']))} creates/s** (target ≥ 5,000); "
                  f"at half that rate ({fs['half_rate']:,}/s) POST-to-event p50 {fmt(fs['post_to_event_p50_ms'])} ms, "
                  f"**p99 {fmt(fs['post_to_event_p99_ms'])} ms** (target < 20); {fs['create_errors']} errors."]
    c1 = s.get("creates-1", {}).get("herald")
    if c1 and "error" not in c1:
        lines += ["", f"The same creates with one subscriber: **{fmt(round(c1['max_creates_per_s']))} creates/s**; "
                  f"at half that rate POST-to-event p50 {fmt(c1['post_to_event_p50_ms'])} ms, "
                  f"p99 {fmt(c1['post_to_event_p99_ms'])} ms; {c1['create_errors']} errors."]
    c1b = s.get("creates-1", {}).get("herald-baseline")
    if c1 and c1b and "error" not in c1 and "error" not in c1b:
        lines += ["", f"The baseline in the same invocation: {fmt(round(c1b['max_creates_per_s']))} creates/s "
                  f"(ratio {c1['max_creates_per_s'] / max(1, c1b['max_creates_per_s']):.2f}); p99 "
                  f"{fmt(c1b['post_to_event_p99_ms'])} ms."]
    lq = s.get("live", {}).get("herald")
    if lq and "error" not in lq:
        b, one, many = lq["broadcast"], lq["one_query"], lq["many_queries"]
        lines += ["", f"Live queries (Herald only), {lq['streams']:,} streams, {lq['writes_per_s']} writes/s, median of "
                  f"{lq['rounds']} alternating rounds: a plain broadcast of the same payloads p99 {fmt(b['p99_ms'])} ms "
                  f"({fmt(b['server_cpu_us_per_change'])} µs CPU per write); one live query followed by every stream "
                  f"p99 **{fmt(one['p99_ms'])} ms** ({fmt(one['server_cpu_us_per_change'])} µs per change, ratio "
                  f"{fmt(lq['one_query_p99_ratio'], 2)}, target ≤ 1.5); {lq['queries']} distinct queries, each write "
                  f"matching one, p99 {fmt(many['p99_ms'])} ms ({fmt(many['server_cpu_us_per_change'])} µs per change, "
                  f"ratio {fmt(lq['many_queries_p99_ratio'], 2)}); deliveries {one['received']:,}/{one['expected']:,} "
                  f"and {many['received']:,}/{many['expected']:,}."]
    pc, pt = s.get("pg-creates-1", {}), s.get("pg-targeted", {})
    sq, pg = pc.get("herald"), pc.get("herald-pg")
    if sq and pg and "error" not in sq and "error" not in pg:
        ratio = pg["max_creates_per_s"] / max(1, sq["max_creates_per_s"])
        lines += ["", f"PostgreSQL against SQLite (Herald, one subscriber, same invocation): creates with a broadcasting "
                  f"`afterCreate` {fmt(round(sq['max_creates_per_s']))}/s on SQLite, {fmt(round(pg['max_creates_per_s']))}/s "
                  f"on PostgreSQL, **ratio {ratio:.2f}** (target ≥ 0.5); {pg['create_errors']} errors on PostgreSQL."]
    tq, tp = pt.get("herald"), pt.get("herald-pg")
    if tq and tp and "error" not in tq and "error" not in tp:
        lines += ["", f"Targeted `$.sendEvent` through a global method, server CPU µs per send with {few:,} streams open "
                  f"(PostgreSQL's processes counted): SQLite {fmt(tq[str(few)]['server_cpu_us_per_send'])}, PostgreSQL "
                  f"{fmt(tp[str(few)]['server_cpu_us_per_send'])}; p50 {fmt(tq[str(few)]['p50_ms'])} and "
                  f"{fmt(tp[str(few)]['p50_ms'])} ms."]
    cl = s.get("cluster", {}).get("herald-cluster")
    if cl and "error" not in cl:
        one, three, lat = cl["fanout_1_node"], cl["fanout_3_nodes"], cl["latency"]
        lines += ["", f"Cluster on PostgreSQL, {size['cluster_subscribers']:,} subscribers: deliveries/s at p99 < 50 ms on one "
                  f"node {fmt(round(one['max_deliveries_per_s']))}, spread over 3 nodes {fmt(round(three['max_deliveries_per_s']))} "
                  f"(all on this machine's 2 cores). Publish on one node at {lat['same_node']['rate']}/s: p99 "
                  f"{fmt(lat['same_node']['p99_ms'])} ms to streams on the same node, {fmt(lat['other_node']['p99_ms'])} ms "
                  f"on another, **{lat['added_p99_ms']:+.2f} ms** (target ≤ +5)."]
    gc = s.get("generator-ceiling", {}).get("trivial")
    if gc and "error" not in gc:
        lines += ["", f"Generator ceiling: sseload parsed {fmt(round(gc['events_per_s']))} events/s from "
                  f"{gc['streams']:,} streams when the trivial server writes 100 events at a time (target ≥ 300,000); "
                  "with one write per event its limit is the trivial server's column above."]
    return "\n".join(lines) + "\n"


def plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
        return
    fanout = results["scenarios"].get("fanout", {})
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, runs in fanout.items():
        if not isinstance(runs, list):
            continue
        xs = [r["subscribers"] for r in runs]
        left.plot(xs, [r["max_deliveries_per_s"] for r in runs], marker="o", label=results["servers"][name])
        right.plot(xs, [r["p99_at_reference_ms"] for r in runs], marker="o", label=results["servers"][name])
    left.set_title("deliveries/s with p99 < 50 ms")
    left.set_xlabel("subscribers")
    left.set_ylabel("deliveries / s")
    left.grid(alpha=0.3)
    reference = next((r[0]["reference_load"] for r in fanout.values() if isinstance(r, list) and r), 0)
    right.set_title(f"p99 latency at {reference:,} deliveries/s")
    right.set_xlabel("subscribers")
    right.set_ylabel("p99 ms")
    right.grid(alpha=0.3)
    left.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(f"Fan-out, {m['cpus']} cores, generator on the same machine ({m['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
