"""Tally the rules of eval/round*_run.txt and eval/trust_run.txt from `cleanplate eval --json` files.

    python eval/tally.py CAND_PREFIX BASE_PREFIX JUDGED_SEEDS ALL_SEEDS [c_new|c_any]

reads CAND_PREFIX_s{seed}.json and BASE_PREFIX_s{seed}.json (one model each, `cleanplate eval -m M
--seed S --levels low,high --json ...`) and the keyer's runs/e/key_s{seed}.json (`-m classical`).
``c_new``: part (c) of trust_run.txt (no new or worse case above 1.5x); ``c_any``: of the rounds'
rules (no case above 1.5x at all).
"""

import json
import sys

cand, base, judged, allseeds = (
    sys.argv[1],
    sys.argv[2],
    [int(s) for s in sys.argv[3].split(",")],
    [int(s) for s in sys.argv[4].split(",")],
)
mode = sys.argv[5] if len(sys.argv) > 5 else "c_new"


def _read(path):
    with open(path) as f:
        return json.load(f)


def load(pre, s):
    d = _read(f"{pre}_s{s}.json")
    ref = {c["name"] + c["level"]: c["metrics"]["classical"] for c in _read(f"runs/e/key_s{s}.json")["cases"]}
    out = {}
    for c in d["cases"]:
        mk = [k for k in c["metrics"] if k != "classical"][0]
        out[c["name"] + "|" + c["level"]] = (
            c["metrics"][mk]["mad"] * 1e3,
            ref[c["name"] + c["level"]]["mad"] * 1e3,
            c["group"],
            c["level"],
        )
    return out


tot_c = tot_b = 0
below = 0
ol_c = ol_b = 0
n = 0
for s in allseeds:
    C, B = load(cand, s), load(base, s)
    for lev in ("low", "high"):
        ks = [k for k in C if C[k][3] == lev]
        mc = sum(C[k][0] for k in ks) / len(ks)
        mb = sum(B[k][0] for k in ks) / len(ks)
        oc = [C[k][0] for k in ks if C[k][2] == "objects"]
        ob = [B[k][0] for k in ks if B[k][2] == "objects"]
        oc, ob = sum(oc) / len(oc), sum(ob) / len(ob)
        j = s in judged
        verdict = ("below" if mc < mb else "NOT below") + ("" if j else " (reported, not judged)")
        print(f"    seed {s} {lev:4s} cand {mc:6.2f} (obj {oc:6.2f})  default {mb:6.2f} (obj {ob:6.2f}) {verdict}")
        if j:
            tot_c += mc
            tot_b += mb
            n += 1
            below += mc < mb
            if lev == "low":
                ol_c += oc
                ol_b += ob
    bad = []
    for k in C:
        rc, rb = C[k][0] / C[k][1], B[k][0] / B[k][1]
        if mode == "c_new":
            if (rc > 1.5 and rb <= 1.5) or (rb > 1.5 and rc > rb + 0.1):
                bad.append(f"{k}@{s} {rc:.2f} (default {rb:.2f})")
        elif rc > 1.5:
            bad.append(f"{k}@{s} {rc:.2f}")
    if bad:
        print("      (c) cases:", bad)
    elif mode == "c_new":
        print(f"      (c) seed {s}: no new or worse case above 1.5x")
nl = len(judged)
ok_a = "pass" if tot_c < tot_b and ol_c < ol_b else "FAIL"
print(f"    (a) mean {tot_c / n:.3f} vs {tot_b / n:.3f}; objects low {ol_c / nl:.3f} vs {ol_b / nl:.3f}: {ok_a}")
print(f"    (b) below at {below} of {n}: {'pass' if below >= 6 else 'FAIL'}")
