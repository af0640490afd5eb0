"""``vocalmix evaluate``: leave-one-song-out comparison with the human mixes.

    vocalmix evaluate --data DIR [DIR...] --report OUTDIR

For every song with level information, the model is trained on the *other* songs, and
three methods predict the held-out song's targets from its stems, the vocal first given
a random gain and gain riding (seeded) as a raw take would have:

* **baseline**: -3 LU vocal-to-mix (a vocal-to-backing of +0.02 LU by power addition);
  vocal LRA = that of its input, capped at 14 LU (the resolver compresses to 14 LU and
  never expands);
* **constant**: the training songs' mean of each target;
* **model**: the ridge level model (:mod:`vocalmix.models`).

The human truth is measured on the stems as mixed: vocal-to-mix and vocal-to-backing
(BS.1770-4 integrated loudness) and the mixed vocal's LRA (EBU Tech 3342). The report
(``report.md``, ``results.json`` and PNG plots) gives the per-song predictions, the
mean absolute error per method and its spread, and the number of songs it rests on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .data import load_song
from .features import features, perturb_vocal
from .measure import loudness_range
from .models import fit_ridge, v2b_to_v2m, v2m_to_v2b
from .train import build_examples, human_truth, level_songs

METHODS = ("baseline", "constant", "model")
KEYS = ("vocal_to_mix_lu", "vocal_to_backing_lu", "vocal_lra_lu")


def evaluate(folders: list[str], seed: int = 0, alpha: float = 10.0, augment: int = 3,
             progress=None, use_cache: bool = True) -> dict:
    """Leave-one-song-out results (a JSON-ready dict)."""
    songs = level_songs(folders, progress)
    if len(songs) < 2:
        from .errors import DataError

        raise DataError("leave-one-song-out needs at least 2 songs with level information")
    ex = build_examples(songs, seed, augment, progress, use_cache)
    rows = []
    for i, song in enumerate(songs):
        if progress:
            progress(f"[{i + 1}/{len(songs)}] held out: {song.song_id}")
        train = ex.song != i
        model = fit_ridge(ex.x[train], ex.y[train], alpha)
        v, b, sr = load_song(song)
        truth = human_truth(v, b, sr)
        rng = np.random.default_rng([seed, 7919, i])
        raw = perturb_vocal(v, sr, rng)
        pv2b, plra = model.predict(features(raw, b, sr))[0]
        train_truth = [human_truth(*load_song(s)[:2], load_song(s)[2])
                       for j, s in enumerate(songs) if j != i]
        c_v2b = float(np.mean([t["vocal_to_backing_lu"] for t in train_truth]))
        c_lra = float(np.mean([t["vocal_lra_lu"] for t in train_truth]))
        pred = {
            "baseline": {"vocal_to_mix_lu": -3.0, "vocal_to_backing_lu": v2m_to_v2b(-3.0),
                         "vocal_lra_lu": min(loudness_range(raw, sr), 14.0)},
            "constant": {"vocal_to_mix_lu": v2b_to_v2m(c_v2b), "vocal_to_backing_lu": c_v2b,
                         "vocal_lra_lu": c_lra},
            "model": {"vocal_to_mix_lu": v2b_to_v2m(float(pv2b)),
                      "vocal_to_backing_lu": float(pv2b), "vocal_lra_lu": float(plra)},
        }
        rows.append({"song": song.song_id, "human": truth, "predicted": pred,
                     "error": {m: {k: pred[m][k] - truth[k] for k in KEYS} for m in METHODS}})
    summary = {
        m: {k: {"mae": float(np.mean([abs(r["error"][m][k]) for r in rows])),
                "sd": float(np.std([abs(r["error"][m][k]) for r in rows]))} for k in KEYS}
        for m in METHODS
    }
    return {"n_songs": len(songs), "seed": seed, "alpha": alpha, "augment": augment,
            "songs": rows, "summary": summary}


def write_report(res: dict, out: Path) -> Path:
    """``report.md``, ``results.json`` and plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    s = res["summary"]
    lines = [
        "# Level and dynamics: leave-one-song-out against the human mixes",
        "",
        f"**{res['n_songs']} songs** with level information. Each song is held out in turn; "
        "the model is trained on the others. Errors are predicted minus human, in LU.",
        "",
        "| method | vocal-to-mix MAE (sd) | vocal-to-backing MAE (sd) | vocal LRA MAE (sd) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for m in METHODS:
        lines.append(f"| {m} | " + " | ".join(
            f"{s[m][k]['mae']:.2f} ({s[m][k]['sd']:.2f})" for k in KEYS) + " |")
    lines += ["", "| song | human v2m | human v2b | human LRA | baseline v2m | constant v2m "
              "| model v2m | model LRA |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: "
              "| ---: |"]
    for r in res["songs"]:
        h, p = r["human"], r["predicted"]
        lines.append(
            f"| {r['song']} | {h['vocal_to_mix_lu']:+.2f} | {h['vocal_to_backing_lu']:+.2f} | "
            f"{h['vocal_lra_lu']:.2f} | {p['baseline']['vocal_to_mix_lu']:+.2f} | "
            f"{p['constant']['vocal_to_mix_lu']:+.2f} | {p['model']['vocal_to_mix_lu']:+.2f} | "
            f"{p['model']['vocal_lra_lu']:.2f} |")
    lines += ["", "![predicted vs human](scatter.png)", "", "![error per song](errors.png)", ""]
    try:
        _plots(res, out)
    except ImportError:
        lines.append("(plots need matplotlib: pip install 'vocalmix[plot]')")
    p = out / "report.md"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def _plots(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"baseline": "tab:blue", "constant": "tab:gray", "model": "tab:orange"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, key, label in ((axes[0], "vocal_to_backing_lu", "vocal-to-backing (LU)"),
                           (axes[1], "vocal_lra_lu", "vocal LRA (LU)")):
        hv = [r["human"][key] for r in res["songs"]]
        for m in METHODS:
            ax.scatter(hv, [r["predicted"][m][key] for r in res["songs"]], label=m,
                       color=colors[m], s=40, alpha=0.8)
        lo, hi = min(hv) - 2, max(hv) + 2
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel(f"human {label}")
        ax.set_ylabel(f"predicted {label}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "scatter.png", dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 4))
    names = [r["song"] for r in res["songs"]]
    x = np.arange(len(names))
    for j, m in enumerate(METHODS):
        ax.bar(x + (j - 1) * 0.27, [r["error"][m]["vocal_to_mix_lu"] for r in res["songs"]],
               0.27, label=m, color=colors[m])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, names, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("vocal-to-mix error, LU (predicted - human)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=90)
    plt.close(fig)


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``vocalmix evaluate``."""
    p = sub.add_parser("evaluate", help="leave-one-song-out evaluation against human mixes")
    p.add_argument("--data", nargs="+", required=True, help="folders of songs (stems)")
    p.add_argument("--report", required=True, help="folder for report.md and plots")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=10.0)
    p.add_argument("--augment", type=int, default=3)
    p.add_argument("--eq", action="store_true",
                   help="evaluate the corrective EQ instead (vocals of all songs, incl. karaoke)")
    p.add_argument("--reverb", action="store_true",
                   help="evaluate the blind reverb-time estimator on held-out IRs and "
                        "measure the reverb of the mixed vocals")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.set_defaults(func=_cmd)


def write_eq_report(res: dict, out: Path) -> Path:
    """Corrective-EQ figures and a plot of one example's curves."""
    out.mkdir(parents=True, exist_ok=True)
    ex = res.pop("example", None)
    res.pop("model", None)
    (out / "eq_results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# Corrective EQ: held-out vocals given a random EQ",
        "",
        f"{res['n_train_songs']} training songs, {res['n_test_songs']} held out "
        f"({res['n_tests']} rendered tests).",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| log-spectral distance to the original, EQ'd, dB | {res['lsd_before_db']:.2f} |",
        f"| ... after the predicted correction, dB | {res['lsd_after_db']:.2f} |",
        f"| fraction of the damage removed | {100 * res['fraction_removed']:.0f}% |",
        f"| distance added to vocals that were not EQ'd, dB | {res['clean_lsd_added_db']:.2f} |",
        "",
    ]
    if ex is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from .eqmodel import CENTRES_HZ

        fig, ax = plt.subplots(figsize=(8, 4))
        for key, label in (("original", "original"), ("damaged", "after random EQ"),
                           ("corrected", "after predicted correction")):
            ax.semilogx(CENTRES_HZ, ex[key], label=label)
        ax.set_xlabel("frequency, Hz (1/3 octave)")
        ax.set_ylabel("level re mean, dB")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "eq_example.png", dpi=90)
        plt.close(fig)
        lines.append("![one example](eq_example.png)")
    p = out / "eq_report.md"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def _cmd(args: argparse.Namespace) -> int:
    def progress(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    if args.reverb:
        from .data import data_root
        from .reverbmodel import reverb_report

        res = reverb_report(args.data, data_root(), progress)
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "reverb_results.json").write_text(json.dumps(res, indent=2) + "\n", "utf-8")
        e = res["estimator_on_held_out_irs"]
        lines = [
            "# Reverb: blind T30 estimator and the engineers' choices", "",
            f"Estimator trained on {e['n_irs_train']} IRs, tested on {e['n_irs_test']} "
            f"held-out IRs ({e['n_examples']} wet vocals in all).", "",
            "| predictor (held-out IRs) | T30 MAE (s) | log-T30 MAE |", "| --- | ---: | ---: |",
            f"| blind estimator | {e['mae_s']:.2f} | {e['mae_log']:.2f} |",
            f"| constant (training median) | {e['constant_mae_s']:.2f} | "
            f"{e['constant_mae_log']:.2f} |", "",
            f"Reverb the engineers chose, estimated on the mixed vocals ({res['n_songs']} "
            "songs), against the baseline's tempo rule and a leave-one-song-out constant:",
            "", "| song | estimated T30 (s) | tempo (BPM) | tempo rule (s) | constant (s) |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for r in res["songs"]:
            lines.append(f"| {r['song']} | {r['estimated_t30_s']:.2f} | {r['tempo_bpm']:.0f} | "
                         f"{r['tempo_rule_s']:.2f} | {r['constant_s']:.2f} |")
        sm = res["summary"]
        lines += ["", f"Mean absolute difference from the estimate: tempo rule "
                      f"{sm['tempo_rule_mae_s']:.2f} s, constant {sm['constant_mae_s']:.2f} s."]
        p = out / "reverb_report.md"
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(p.read_text(encoding="utf-8"))
        return 0
    if args.eq:
        from .eqmodel import evaluate_eq

        p = write_eq_report(evaluate_eq(args.data, seed=args.seed, progress=progress),
                            Path(args.report))
        print(p.read_text(encoding="utf-8"))
        return 0
    res = evaluate(args.data, args.seed, args.alpha, args.augment, progress)
    p = write_report(res, Path(args.report))
    print(p.read_text(encoding="utf-8").split("\n\n| song")[0])
    print(f"\nwrote {p}")
    return 0
