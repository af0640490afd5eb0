"""Benchmark of `vocalmix fit-reverb`: seconds per impulse response and T30 accuracy.

Fits the synthetic reverb to IRs of the library (:func:`vocalmix.training.irlib.library`;
by default every real IR of the data folder) with the same settings as the command, one
IR at a time in this process, and prints per IR: wall-clock and CPU seconds of
:func:`vocalmix.training.fitreverb.fit_ir` (the fit and the report's figures; reading the
file is not counted), the worst T30 error over 500 Hz, 1, 2 and 4 kHz (fitted send as the
mixing code renders it, both sides measured at the IR's own rate) and whether all four are
within 10 %. The summary gives median and maximum seconds per IR and the count within
10 %; with ``--compare`` (default: the shipped report, ``docs/evaluation/reverb_fit.json``)
the same IRs' results there are set beside them. The machine's load average is printed
before and after: the CPU seconds are the figure that does not depend on other jobs.

    python bench/bench_fit_reverb.py [--origins real] [--every K | --limit N] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADLINE = ("500", "1000", "2000", "4000")


def _worst_pct(result: dict) -> float | None:
    """Worst |fitted / target - 1| over the headline bands, %; ``None`` if one is missing."""
    errs = []
    for b in HEADLINE:
        t, f = result["target"]["t30_s"].get(b), result["fitted"]["t30_s"].get(b)
        if t is None or f is None:
            return None
        errs.append(abs(f / t - 1.0))
    return 100.0 * max(errs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--origins", default="real",
                    help="comma-separated: real, pedalboard, calf, tap (default real)")
    ap.add_argument("--data", default=None, help="data folder holding ir/ "
                    "(default: $VOCALMIX_DATA or ../shared/data)")
    ap.add_argument("--every", type=int, default=1, help="fit every K-th IR only (a sample)")
    ap.add_argument("--limit", type=int, default=None, help="at most this many IRs")
    ap.add_argument("--compare", default=str(ROOT / "docs/evaluation/reverb_fit.json"),
                    help="a reverb_fit.json to compare with ('' for none)")
    ap.add_argument("--json", help="also write the per-IR figures and summary here")
    args = ap.parse_args()

    from vocalmix.training.fitreverb import fit_ir
    from vocalmix.training.irlib import library

    before = {}
    if args.compare and Path(args.compare).exists():
        before = json.loads(Path(args.compare).read_text(encoding="utf-8"))["irs"]
    load0 = os.getloadavg()
    print(f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} "
          f"({os.cpu_count()} CPUs)", flush=True)
    origins = [o.strip() for o in args.origins.split(",") if o.strip()]
    rows = []
    print(f"{'IR':34s} {'wall s':>7s} {'cpu s':>6s} {'worst %':>8s} within  "
          f"{'before: s':>9s} {'worst %':>8s} within", flush=True)
    for i, it in enumerate(library(origins, data_dir=args.data, log=lambda m: None)):
        if i % args.every:
            continue
        if args.limit is not None and len(rows) >= args.limit:
            break
        t0, c0 = time.perf_counter(), time.process_time()
        r = fit_ir(it.ir, it.sample_rate)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        worst = _worst_pct(r)
        old = before.get(it.name)
        row = {"name": it.name, "origin": it.origin, "wall_s": round(wall, 2),
               "cpu_s": round(cpu, 2), "worst_t30_err_pct": worst,
               "within_10pct": bool(r["within_10pct_500_4k"]), "reverb": r["reverb"],
               "renders": r.get("renders"),
               "before": None if old is None else {
                   "seconds": old.get("seconds"), "worst_t30_err_pct": _worst_pct(old),
                   "within_10pct": bool(old["within_10pct_500_4k"])}}
        rows.append(row)

        def pct(v: float | None) -> str:
            return "–" if v is None else f"{v:.1f}"

        b = row["before"] or {}
        print(f"{it.name[:34]:34s} {wall:7.2f} {cpu:6.2f} {pct(worst):>8s} "
              f"{'yes' if row['within_10pct'] else 'NO ':6s}  "
              f"{b.get('seconds', float('nan')):9.1f} {pct(b.get('worst_t30_err_pct')):>8s} "
              f"{'' if not b else ('yes' if b['within_10pct'] else 'NO')}", flush=True)
    if not rows:
        print("no IRs fitted", file=sys.stderr)
        return 1
    load1 = os.getloadavg()
    walls, cpus = [r["wall_s"] for r in rows], [r["cpu_s"] for r in rows]
    ok = sum(r["within_10pct"] for r in rows)
    summary = {
        "irs": len(rows), "origins": origins, "every": args.every,
        "wall_s_median": round(statistics.median(walls), 2), "wall_s_max": max(walls),
        "cpu_s_median": round(statistics.median(cpus), 2), "cpu_s_max": max(cpus),
        "within_10pct": ok, "fraction_within": round(ok / len(rows), 4),
        "load_average_before": load0, "load_average_after": load1,
    }
    olds = [r["before"] for r in rows if r["before"]]
    if olds:
        summary["before"] = {
            "irs": len(olds), "within_10pct": sum(o["within_10pct"] for o in olds),
            "seconds_median": statistics.median(o["seconds"] for o in olds),
            "seconds_max": max(o["seconds"] for o in olds)}
    print(f"\n{len(rows)} IRs: wall {summary['wall_s_median']:.2f} s median, "
          f"{summary['wall_s_max']:.2f} s max per IR; CPU {summary['cpu_s_median']:.2f} s "
          f"median, {summary['cpu_s_max']:.2f} s max; T30 within 10 % at 500 Hz-4 kHz: "
          f"{ok} of {len(rows)} ({100 * ok / len(rows):.0f} %)")
    if olds:
        sb = summary["before"]
        print(f"the same IRs in {args.compare}: {sb['within_10pct']} of {sb['irs']} within "
              f"10 %, {sb['seconds_median']:.1f} s median, {sb['seconds_max']:.1f} s max "
              "per IR (wall, that run's machine)")
    print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "irs": rows}, indent=1)
                                   + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
