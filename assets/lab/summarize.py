#!/usr/bin/env python3
"""Count what a recording holds: the initial dump, the events, and the table at the end.

Owns: a read-only summary of a `ctscope record` file, computed from ctscope's own JSON
(`--replay FILE list --json` and `list --expect --json`: the table as the recording left
it; `--fast watch --ndjson`: the events), used to
check that a fresh run of make-recording.sh produced the same kinds of entries.
Must not: decode the file itself (ctscope does that) or need root.

Usage: summarize.py [--bin target/release/ctscope] [FILE]   (default assets/lab-helpers.ctrec)
"""
import argparse
import collections
import json
import os
import subprocess
import sys

repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def run(bin_, rec, *args):
    out = subprocess.run([bin_, "--replay", rec, *args], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    return out


def counts(items):
    """Counter as a dict in a stable order (runs are compared with diff)."""
    return dict(sorted(collections.Counter(items).items(), key=str))


def tkey(t):
    return tuple(sorted((k, str(v)) for k, v in (t or {}).items()))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=os.path.join(repo, "target", "release", "ctscope"))
    p.add_argument("file", nargs="?", default=os.path.join(repo, "assets", "lab-helpers.ctrec"))
    a = p.parse_args()

    # `list --replay` shows the table as the recording left it; `watch` the events.
    flows, expects = {}, {}
    for f in json.loads(run(a.bin, a.file, "list", "--json")):
        flows[(f["zone"], f["proto"], tkey(f["orig"]))] = f
    for e in json.loads(run(a.bin, a.file, "list", "--expect", "--json")):
        expects[(e["zone"], e["proto"], tkey(e["tuple"]), tkey(e["master"]))] = e

    events = collections.Counter()
    related_new = collections.Counter()
    seen_new = set()
    for line in run(a.bin, a.file, "--fast", "watch", "--ndjson").splitlines():
        o = json.loads(line)
        events[(o["kind"], o["event"], o.get("helper") or "-")] += 1
        if o["kind"] == "flow" and o["event"] == "new":
            seen_new.add((o["zone"], o["proto"], tkey(o["orig"])))
            if "EXPECTED" in o["status"]:
                related_new[o["proto"] + "/" + o["family"]] += 1
    before = sum(1 for k in flows if k not in seen_new)

    # Which helper's master each RELATED flow came from.
    masters = {(f["zone"], f["proto"], tkey(f["orig"])): f.get("helper") for f in flows.values()}
    rel_by_helper = collections.Counter()
    for f in flows.values():
        if "EXPECTED" in f.get("status", []):
            m = f.get("master") or {}
            h = next((hh for (z, pr, key), hh in masters.items() if key == tkey(m) and hh), "?")
            rel_by_helper[h] += 1

    print(f"recording: {a.file} ({os.path.getsize(a.file)} bytes)")
    print(f"flows already there when the recording started (and still at its end): {before}")
    print("events (kind, event, helper):")
    for k in sorted(events):
        print(f"  {k[0]:6} {k[1]:7} {k[2]:5} {events[k]}")
    print("RELATED flows created during the recording:", dict(sorted(related_new.items())))
    fl = list(flows.values())
    print(f"table at the end: {len(fl)} flows, {len(expects)} expectations")
    print("  flows per family/proto:", counts(f'{f["family"]}/{f["proto"]}' for f in fl))
    print("  master flows per helper:", counts(f["helper"] for f in fl if f.get("helper")))
    print("  RELATED flows per helper of their master:", dict(sorted(rel_by_helper.items())))
    print("  NAT'd flows:", sum(1 for f in fl if set(f.get("status", [])) & {"SRC_NAT", "DST_NAT"}))
    print("  zones:", counts(f["zone"] for f in fl))
    print("  marks:", counts(hex(f["mark"]) for f in fl if f.get("mark")))
    print("  labelled flows:", sum(1 for f in fl if f.get("labels")))
    print("  expectations per helper:", counts(e["helper"] for e in expects.values()))
    print("  expectations per family:", counts(e["family"] for e in expects.values()))
    d3306 = [e for e in expects.values() if e["tuple"].get("dport") == 3306]
    r3306 = [f for f in fl if f["orig"].get("dport") == 3306 and "EXPECTED" in f.get("status", [])]
    print(f"  toward 3306: {len(d3306)} expectation(s), {len(r3306)} RELATED flow(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
