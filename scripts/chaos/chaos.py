#!/usr/bin/env python3
"""The Python side of `make chaos` (scripts/chaos.sh): Python 3 standard library only.

Sub-commands (each takes the run directory, where chaos.sh wrote config.json):

  receiver RUN PORT   the tenants' webhook endpoint: verifies each delivery's signature and applies
                      each event id once (a redelivery is counted, never applied again); appends every
                      delivery to RUN/deliveries.jsonl
  load RUN            the steady writer: POSTs locations and patients for every tenant through both
                      instances at a fixed rate, each write under its own Idempotency-Key, retrying a
                      failed or timed-out write with the SAME key and body (on the other instance)
                      until it is acknowledged; RUN/acks.jsonl, RUN/errors.jsonl, RUN/abandoned.jsonl
  recover RUN NAME T S
                      after a fault started at S whose dependency came back at T (epoch seconds):
                      polls /health/ready on both instances and a write per tenant through each until
                      all succeed, then until every tenant gets events again and those writes' events
                      reached the receiver (caught up: not limited); appends the
                      recovery to RUN/faults.jsonl (its writes are acknowledged writes like the load's)
  drain RUN SECS      waits until every acknowledged write's event has reached the receiver (or SECS)
  verify RUN          compares acks, the shard rows (RUN/rows-*.tsv, dumped by chaos.sh), deliveries
                      and faults; prints the table, writes RUN/table.md; exit 1 on loss, duplicate,
                      missing event or a recovery over the limit

All times are epoch seconds (time.time()), so the load's records and chaos.sh's fault times line up.
"""

import collections
import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
import sys
import threading
import time
import uuid

RETRYABLE = {0, 429, 500, 502, 503, 504}
RECOVERY_LIMIT_MS = 10_000


def config(run):
    with open(os.path.join(run, "config.json")) as f:
        return json.load(f)


class Appender:
    """A JSON-lines file shared by threads."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, obj):
        line = json.dumps(obj, separators=(",", ":"))
        with self.lock:
            self.f.write(line + "\n")


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# --- HTTP ------------------------------------------------------------------------------------------


def call(addr, method, path, token, body=None, key=None, timeout=10.0):
    """One request on a fresh connection: (status, parsed body or None); status 0 = no answer."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Authorization": "Bearer " + token}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    if key:
        headers["Idempotency-Key"] = key
    try:
        conn.request(method, path, data, headers)
        r = conn.getresponse()
        raw = r.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return r.status, parsed
    except (OSError, http.client.HTTPException) as e:
        return 0, {"code": type(e).__name__}
    finally:
        conn.close()


def write_body(kind, key):
    """The body of one logical write; the key is in it, so a row can be traced to its write."""
    if kind == "location":
        return {
            "code": "C" + key.replace("-", "")[:12].upper(),
            "name": "Chaos " + key,
            "address": {"line1": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"},
        }
    return {
        "first_name": "Chaos",
        "last_name": "Load",
        "date_of_birth": "1950-01-01",
        "delivery_directions": "chaos " + key,
    }


def one_write(cfg, tenant, kind, start_instance, acks, errors, give_up_at, source):
    """Writes until acknowledged (True) or give_up_at passes (False). Same key and body throughout."""
    key = str(uuid.uuid4())
    body = write_body(kind, key)
    path = "/v1/tenants/%s/%ss" % (tenant["slug"], kind)
    instances = cfg["instances"]
    i = start_instance
    attempts = 0
    first = time.time()
    while True:
        attempts += 1
        addr = instances[i % len(instances)]
        status, resp = call(addr, "POST", path, tenant["key"], body, key)
        now = time.time()
        if status in (200, 201) and resp and resp.get("id"):
            acks.write({"t": now, "first": first, "tenant": tenant["slug"], "shard": tenant["shard"],
                        "kind": kind, "id": resp["id"], "key": key, "attempts": attempts,
                        "instance": addr, "source": source})
            return True
        code = (resp or {}).get("code") if isinstance(resp, dict) else None
        errors.write({"t": now, "tenant": tenant["slug"], "kind": kind, "key": key, "instance": addr,
                      "status": status, "code": code or "", "final": status not in RETRYABLE,
                      "source": source})
        if status not in RETRYABLE or now > give_up_at():
            return False
        i += 1  # the other instance next
        time.sleep(0.1 + random.random() * 0.1)


# --- load ------------------------------------------------------------------------------------------


def load(run):
    cfg = config(run)
    rate = float(cfg.get("rate", 100))
    threads = int(cfg.get("threads", 24))
    stop_file = os.path.join(run, "load.stop")
    acks = Appender(os.path.join(run, "acks.jsonl"))
    errors = Appender(os.path.join(run, "errors.jsonl"))
    abandoned = Appender(os.path.join(run, "abandoned.jsonl"))
    lock = threading.Lock()
    state = {"n": 0, "stopped_at": None}
    t0 = time.time()
    kinds = ["location", "patient"]
    tenants = cfg["tenants"]

    def give_up_at():
        # After the stop, a write still being retried has 30 s to get through.
        s = state["stopped_at"]
        return float("inf") if s is None else s + 30

    def worker():
        while True:
            with lock:
                if state["stopped_at"] is None and os.path.exists(stop_file):
                    state["stopped_at"] = time.time()
                if state["stopped_at"] is not None:
                    return
                n = state["n"]
                state["n"] += 1
            slot = t0 + n / rate
            delay = slot - time.time()
            if delay > 0:
                time.sleep(delay)
            # Every (tenant, kind, first instance) combination in turn: n counts tenants fastest,
            # then kinds, then instances, so no tenant is tied to one instance.
            tenant = tenants[n % len(tenants)]
            kind = kinds[(n // len(tenants)) % len(kinds)]
            first = n // (len(tenants) * len(kinds))
            if not one_write(cfg, tenant, kind, first, acks, errors, give_up_at, "load"):
                abandoned.write({"t": time.time(), "tenant": tenant["slug"], "kind": kind, "n": n})

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(json.dumps({"writes_started": state["n"], "seconds": round(time.time() - t0, 1)}))


# --- recovery --------------------------------------------------------------------------------------


def recover(run, name, returned_at, started_at, limit_s=60.0):
    """Polls until both instances are ready and a write per tenant succeeds through each; then
    until those writes' events reached the receiver (events flow again). Records the fault."""
    cfg = config(run)
    acks_path = os.path.join(run, "acks.jsonl")
    acks = Appender(acks_path)
    errors = Appender(os.path.join(run, "errors.jsonl"))
    deadline = time.time() + limit_s
    recovered = None
    probe_start = time.time()
    while time.time() < deadline:
        ready = all(
            (lambda s, b: s == 200 and isinstance(b, dict) and b.get("status") == "ready")(
                *call(a, "GET", "/health/ready", cfg["token"], timeout=2)
            )
            for a in cfg["instances"]
        )
        if ready:
            # A real tenant request on every instance for every tenant: a write (one attempt each).
            ok = True
            for i, _ in enumerate(cfg["instances"]):
                for tenant in cfg["tenants"]:
                    if not one_write(cfg, tenant, "location", i, acks, errors, lambda: 0, "probe"):
                        ok = False
            if ok:
                recovered = time.time()
                break
        time.sleep(0.1)
    # Events flow again: every tenant gets a delivery after the return. Caught up: the probe
    # writes' own events arrived (they queue behind whatever piled up during the fault).
    flowing_at = caught_up_at = None
    deliveries_path = os.path.join(run, "deliveries.jsonl")
    slugs = {t["slug"] for t in cfg["tenants"]}
    if recovered is not None:
        probes = {a["id"] for a in read_jsonl(acks_path)
                  if a["source"] == "probe" and a["first"] >= probe_start}
        while time.time() < deadline and caught_up_at is None:
            after = [d for d in read_jsonl(deliveries_path) if d["t"] > returned_at and d.get("event_id")]
            if flowing_at is None and {d["tenant"] for d in after} >= slugs:
                flowing_at = max(min(d["t"] for d in after if d["tenant"] == s) for s in slugs)
            if probes <= set(applied_resources(run)):
                caught_up_at = time.time()
            else:
                time.sleep(0.1)
    rec = {"fault": name, "start": started_at, "returned": returned_at, "recovered": recovered,
           "recovery_ms": None if recovered is None else round((recovered - returned_at) * 1000),
           "events_ms": None if flowing_at is None else round((flowing_at - returned_at) * 1000),
           "caught_up_ms": None if caught_up_at is None else round((caught_up_at - returned_at) * 1000)}
    Appender(os.path.join(run, "faults.jsonl")).write(rec)
    print(json.dumps(rec))
    return 0 if recovered is not None else 1


# --- webhook receiver ------------------------------------------------------------------------------


def verify_signature(header, secret, body, tolerance=300):
    try:
        parts = [p.split("=", 1) for p in header.split(",")]
        t = next(v for k, v in parts if k.strip() == "t")
        sigs = [v for k, v in parts if k.strip() == "v1"]
        if not t.isdigit() or abs(time.time() - int(t)) > tolerance:
            return False
    except (ValueError, StopIteration):
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in sigs)


def receiver(run, port):
    secrets_path = os.path.join(run, "webhook-secrets.json")
    log = Appender(os.path.join(run, "deliveries.jsonl"))
    applied = set()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def answer(self, status):
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            tenant = self.path.strip("/").split("/")[-1]
            try:
                with open(secrets_path) as f:
                    secret = json.load(f).get(tenant)
            except (OSError, ValueError):
                secret = None
            if not secret or not verify_signature(self.headers.get("Aries-Signature", ""), secret, body):
                log.write({"t": time.time(), "tenant": tenant, "bad_signature": True})
                return self.answer(401)
            event = json.loads(body)
            with lock:  # the effect: applied once per event id
                fresh = event["id"] not in applied
                applied.add(event["id"])
            data = event.get("data") or {}
            log.write({"t": time.time(), "tenant": tenant, "event_id": event["id"], "type": event["type"],
                       "resource_id": data.get("id"), "attempt": self.headers.get("Aries-Delivery-Attempt"),
                       "applied": fresh})
            self.answer(204)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    srv.daemon_threads = True
    srv.serve_forever()


# --- drain and verify ------------------------------------------------------------------------------


def applied_resources(run):
    """resource id → number of distinct event ids applied for it (created events only)."""
    seen = collections.defaultdict(set)
    for d in read_jsonl(os.path.join(run, "deliveries.jsonl")):
        if d.get("type", "").endswith(".created") and d.get("resource_id"):
            seen[d["resource_id"]].add(d["event_id"])
    return seen


def drain(run, secs):
    deadline = time.time() + float(secs)
    while True:
        acked = {a["id"] for a in read_jsonl(os.path.join(run, "acks.jsonl"))}
        missing = acked - set(applied_resources(run))
        if not missing or time.time() > deadline:
            print(json.dumps({"acked": len(acked), "events_missing": len(missing)}))
            return 0
        time.sleep(1)


def read_rows(run):
    """(tenant, kind, id, key) of every row the shards hold for the chaos tenants."""
    rows = []
    for name in sorted(os.listdir(run)):
        if name.startswith("rows-") and name.endswith(".tsv"):
            with open(os.path.join(run, name)) as f:
                for line in f:
                    parts = line.rstrip("\n").split("\t")
                    if len(parts) == 5:
                        shard, tenant, kind, rid, marker = parts
                        rows.append({"shard": shard, "tenant": tenant, "kind": kind, "id": rid,
                                     "key": marker.split(" ", 1)[-1]})
    return rows


def verify(run):
    cfg = config(run)
    acks = read_jsonl(os.path.join(run, "acks.jsonl"))
    errors = read_jsonl(os.path.join(run, "errors.jsonl"))
    faults = read_jsonl(os.path.join(run, "faults.jsonl"))
    abandoned = read_jsonl(os.path.join(run, "abandoned.jsonl"))
    deliveries = read_jsonl(os.path.join(run, "deliveries.jsonl"))
    rows = read_rows(run)
    tenant_shard = {t["slug"]: t["shard"] for t in cfg["tenants"]}
    tenant_ids = {t["id"]: t["slug"] for t in cfg["tenants"]}

    rows_by_id = collections.defaultdict(list)
    rows_by_key = collections.defaultdict(list)
    for r in rows:
        rows_by_id[r["id"]].append(r)
        rows_by_key[r["key"]].append(r)
    applied = applied_resources(run)
    acked_keys = {a["key"] for a in acks}

    def judge(a):
        """(lost, duplicate, event missing, event applied twice) for one acknowledged write."""
        found = [r for r in rows_by_id.get(a["id"], [])
                 if tenant_ids.get(r["tenant"]) == a["tenant"] and r["shard"] == tenant_shard[a["tenant"]]]
        lost = len(found) == 0
        dup = len(rows_by_key.get(a["key"], [])) > 1
        events = len(applied.get(a["id"], ()))
        return lost, dup, events == 0, events > 1

    judged = [(a, judge(a)) for a in acks]
    # Rows written by a key nobody saw acknowledged (a write abandoned at the end), counted apart.
    unacked_rows = [r for r in rows if r["key"] not in acked_keys]
    bad_signatures = sum(1 for d in deliveries if d.get("bad_signature"))
    redeliveries = sum(1 for d in deliveries if d.get("applied") is False)

    def window(lo, hi):
        errs = collections.Counter()
        for e in errors:
            if lo <= e["t"] <= hi and e.get("source") != "probe":
                errs["%s %s" % (e["status"] or "conn", e["code"] or "-")] += 1
        inside = [(a, j) for a, j in judged if lo <= a["t"] <= hi or lo <= a["first"] <= hi]
        return errs, inside

    lines = []
    header = ("| fault | at (s) | errors seen during (status code × n) | writes acked | data lost | "
              "duplicates | events missing | recovery (ms) | events flowing (ms) | events caught up (ms) |")
    lines.append(header)
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    t_start = min([a["first"] for a in acks] + [f["start"] for f in faults] or [time.time()])
    over_limit = []
    for f in faults:
        hi = f["recovered"] if f["recovered"] is not None else f["returned"] + 60
        errs, inside = window(f["start"], hi)
        lost = sum(1 for _, j in inside if j[0])
        dups = sum(1 for _, j in inside if j[1])
        miss = sum(1 for _, j in inside if j[2] or j[3])
        rec, ev = f["recovery_ms"], f.get("events_ms")
        if rec is None or rec > RECOVERY_LIMIT_MS or ev is None or ev > RECOVERY_LIMIT_MS:
            over_limit.append(f["fault"])
        err_text = ", ".join("%s × %d" % kv for kv in sorted(errs.items())) or "none"
        cu = f.get("caught_up_ms")
        lines.append("| %s | %.1f | %s | %d | %d | %d | %d | %s | %s | %s |" % (
            f["fault"], f["start"] - t_start, err_text, len(inside), lost, dups, miss,
            "not recovered" if rec is None else rec, "none" if ev is None else ev,
            "none" if cu is None else cu))
    all_errs, _ = window(float("-inf"), float("inf"))
    lost = sum(1 for _, j in judged if j[0])
    dups = sum(1 for _, j in judged if j[1])
    miss = sum(1 for _, j in judged if j[2])
    twice = sum(1 for _, j in judged if j[3])
    worst = max([f["recovery_ms"] or 0 for f in faults] or [0])
    worst_ev = max([f.get("events_ms") or 0 for f in faults] or [0])
    worst_cu = max([f.get("caught_up_ms") or 0 for f in faults] or [0])
    lines.append("| **total** | | %s | %d | %d | %d | %d | max %d | max %d | max %d |" % (
        ", ".join("%s × %d" % kv for kv in sorted(all_errs.items())) or "none",
        len(acks), lost, dups, miss + twice, worst, worst_ev, worst_cu))
    finals = [e for e in errors if e.get("final")]
    notes = [
        "- acknowledged writes: %d (%d by the load, %d by the recovery probes), over %.0f s; "
        "writes abandoned at the end: %d; rows without an acknowledgement: %d" % (
            len(acks), sum(1 for a in acks if a["source"] == "load"),
            sum(1 for a in acks if a["source"] == "probe"),
            max(a["t"] for a in acks) - t_start if acks else 0, len(abandoned), len(unacked_rows)),
        "- writes retried: %d (max attempts for one write: %d); refused for good (non-retryable): %d" % (
            sum(1 for a in acks if a["attempts"] > 1), max([a["attempts"] for a in acks] or [0]), len(finals)),
        "- webhook deliveries: %d, redeliveries of an applied event (allowed): %d, events applied twice "
        "for one write: %d, bad signatures: %d" % (len(deliveries), redeliveries, twice, bad_signatures),
    ]
    text = "\n".join(lines + [""] + notes) + "\n"
    with open(os.path.join(run, "table.md"), "w") as f:
        f.write(text)
    print(text)
    problems = []
    if lost:
        problems.append("%d acknowledged writes lost" % lost)
    if dups:
        problems.append("%d acknowledged writes duplicated" % dups)
    if miss:
        problems.append("%d acknowledged writes whose event never arrived" % miss)
    if twice:
        problems.append("%d writes whose effect was applied twice" % twice)
    if over_limit:
        problems.append("recovery over %d ms (or none): %s" % (RECOVERY_LIMIT_MS, ", ".join(over_limit)))
    if finals:
        problems.append("%d writes refused with a non-retryable answer" % len(finals))
    if unacked_rows and not abandoned:
        problems.append("%d rows nobody saw acknowledged" % len(unacked_rows))
    if not acks:
        problems.append("no write was acknowledged")
    for p in problems:
        print("PROBLEM: " + p, file=sys.stderr)
    return 1 if problems else 0


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, run = argv[1], argv[2]
    if cmd == "receiver":
        receiver(run, argv[3])
    elif cmd == "load":
        load(run)
    elif cmd == "recover":
        return recover(run, argv[3], float(argv[4]), float(argv[5]))
    elif cmd == "drain":
        return drain(run, argv[3])
    elif cmd == "verify":
        return verify(run)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
