"""Compare two models' eval JSONs over composite seeds 0-12: per-seed mean MAD and the cases above
1.5x the keyer's MAD (the part of the eval/*_run.txt rules that tally.py does not print).

Reads runs/e/{prefix}_s{seed}.json (`cleanplate eval --json`) and the keyer's runs/e/key_s{seed}.json;
run from the repository root: python eval/cmp_rule.py trust2 nbase
"""

import json
import sys
from pathlib import Path

SEEDS = range(13)


def _load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def cases(prefix: str, seed: int) -> dict:
    """(seed, case, level) -> (MAD x1e3, MAD / the keyer's, group)."""
    keyer = {
        c["name"] + c["level"]: c["metrics"]["classical"]["mad"] for c in _load(f"runs/e/key_s{seed}.json")["cases"]
    }
    out = {}
    for c in _load(f"runs/e/{prefix}_s{seed}.json")["cases"]:
        mad = next(v for k, v in c["metrics"].items() if k != "classical")["mad"]
        out[(seed, c["name"], c["level"])] = (mad * 1e3, mad / keyer[c["name"] + c["level"]], c["group"])
    return out


def main(cand: str, base: str) -> None:
    c_all, b_all = {}, {}
    for s in SEEDS:
        c_all.update(cases(cand, s))
        b_all.update(cases(base, s))
    for lev in ("low", "high"):
        row = []
        for s in SEEDS:
            mc = [v[0] for k, v in c_all.items() if k[0] == s and k[2] == lev]
            mb = [v[0] for k, v in b_all.items() if k[0] == s and k[2] == lev]
            row.append(f"s{s} {sum(mc) / len(mc):.2f}/{sum(mb) / len(mb):.2f}")
        print(lev, " ".join(row))
    base_over = [k for k in b_all if b_all[k][1] > 1.5]
    for name, x in ((cand, c_all), (base, b_all)):
        over = [k for k in x if x[k][1] > 1.5]
        worst = max(v[1] for v in x.values())
        total = sum(x[k][1] for k in base_over)
        print(
            f"{name}: {len(over)} cases > 1.5x, worst {worst:.2f}, sum of ratios over {base}'s >1.5 cases {total:.3f}"
        )
    print("new >1.5 in cand:", [(k, round(c_all[k][1], 2)) for k in c_all if c_all[k][1] > 1.5 and b_all[k][1] <= 1.5])
    print("fixed in cand:", [(k, round(b_all[k][1], 2)) for k in c_all if c_all[k][1] <= 1.5 and b_all[k][1] > 1.5])
    print("low identical:", all(abs(c_all[k][0] - b_all[k][0]) < 1e-6 for k in c_all if k[2] == "low"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
