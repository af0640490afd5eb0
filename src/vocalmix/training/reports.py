"""The evaluation reports: markdown and plots for ``docs/evaluation``.

* the level model, leave-one-song-out (:func:`write_level_report`: ``report.md``,
  ``results.json``, ``scatter.png``, ``errors.png``), from
  :func:`vocalmix.training.level.evaluate_level_model`;
* the corrective EQ on held-out singers (:func:`write_eq_report`: ``eq_report.md``,
  ``eq_results.json``, ``eq_example.png``), from :func:`vocalmix.training.eq.evaluate_eq`;
* the reverb model (:func:`write_reverb_report`: ``reverb_report.md``,
  ``reverb_results.json``, ``reverb_estimator.png``, ``reverb_songs.png``), from
  :func:`vocalmix.training.reverb.reverb_report`.

Plots need matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from vocalmix.training.level import DEFAULT_ALPHA, KEYS, LABELS, METHODS
from vocalmix.training.reverb import PRIOR_SONGS

# --- the level model ---------------------------------------------------------------------


def _fmt_row(s: dict, m: str) -> str:
    return " | ".join(f"{s[m][k]['mae']:.2f} ({s[m][k]['sd']:.2f})" for k in KEYS)


def level_report_markdown(res: dict) -> str:
    """The report's markdown text."""
    s, n = res["summary"], res["n_songs"]
    best = {k: min(METHODS, key=lambda m: s[m][k]["mae"]) for k in KEYS}
    mv = s["model"]["vocal_to_mix_lu"]["mae"]
    beats = mv < s["baseline"]["vocal_to_mix_lu"]["mae"] and mv < s["constant"][
        "vocal_to_mix_lu"]["mae"]
    lines = [
        "# Level and dynamics: leave-one-song-out against the human mixes",
        "",
        f"**{n} songs** with level information, {res['n_examples']} training examples in "
        "all. Each song is held out in turn and the model is trained on the other "
        f"{n - 1}; every method then predicts the held-out song from its whole stems, the "
        f"vocal first made to look like a raw take ({res.get('draws', 1)} seeded draws, "
        "predictions averaged). Errors are predicted minus human, LU; MAE is the mean "
        "absolute error over songs, (sd) the spread of the absolute errors.",
    ]
    if res.get("skipped_without_level_info"):
        lines += ["", f"{res['skipped_without_level_info']} karaoke clip(s) found under the "
                  "same folders were left out: both channels of those sets were normalised, "
                  "so their balance is not a mixing choice."]
    lines += [
        "",
        "| method | vocal-to-mix MAE (sd) | vocal-to-backing MAE (sd) | vocal LRA MAE (sd) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for m in METHODS:
        lines.append(f"| {m} | {_fmt_row(s, m)} |")
    lines += [
        "",
        "Mean signed error (bias), LU: " + "; ".join(
            f"{m} " + ", ".join(f"{LABELS[k]} {s[m][k]['bias']:+.2f}" for k in KEYS)
            for m in METHODS) + ".",
        "",
        "Lowest error: " + ", ".join(f"{LABELS[k]}: **{best[k]}**" for k in KEYS) + ".",
        "",
        ("The model's vocal-to-mix error is below both the baseline's and the constant "
         "predictor's on these songs." if beats else
         "The model's vocal-to-mix error is **not** below both the baseline's and the "
         "constant predictor's on these songs."),
        "",
        "## Per song",
        "",
        "| song | length | human v2m | human v2b | human LRA | baseline v2m | constant v2m "
        "| model v2m | model v2b | baseline LRA | constant LRA | model LRA |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in res["songs"]:
        h, p = r["human"], r["predicted"]
        lines.append(
            f"| {r['song']} | {r['duration_s']:.0f} s | {h['vocal_to_mix_lu']:+.2f} | "
            f"{h['vocal_to_backing_lu']:+.2f} | {h['vocal_lra_lu']:.2f} | "
            f"{p['baseline']['vocal_to_mix_lu']:+.2f} | {p['constant']['vocal_to_mix_lu']:+.2f}"
            f" | {p['model']['vocal_to_mix_lu']:+.2f} | {p['model']['vocal_to_backing_lu']:+.2f}"
            f" | {p['baseline']['vocal_lra_lu']:.2f} | {p['constant']['vocal_lra_lu']:.2f} | "
            f"{p['model']['vocal_lra_lu']:.2f} |")
    lines += ["", "![predicted vs human](scatter.png)", "", "![error per song](errors.png)",
              ""]
    sens = res.get("sensitivity")
    if sens:
        lines += [
            "## How much the model's result depends on its settings",
            "",
            "Held-out MAE (LU) with the ridge penalty fixed for every fold (the model above "
            f"uses {DEFAULT_ALPHA:g} with fewer than 8 training songs, else a value chosen "
            "by cross-validation inside the training songs):",
            "",
            "| alpha (songs) | vocal-to-mix MAE | vocal LRA MAE |",
            "| ---: | ---: | ---: |",
        ]
        for a, v in sens["alpha"].items():
            lines.append(f"| {float(a):g} | {v['vocal_to_mix_lu_mae']:.2f} | "
                         f"{v['vocal_lra_lu_mae']:.2f} |")
        lines += ["", "Vocal-to-mix MAE (LU) of the same ridge on one level feature at a "
                  "time:", "", "| feature | vocal-to-mix MAE |", "| --- | ---: |"]
        for f, v in sens["single_level_feature_v2m_mae"].items():
            lines.append(f"| `{f}` | {v:.2f} |")
        lines.append("")
    pert = res.get("perturbation", {})
    if pert:
        lines += [
            "## The raw-take perturbation",
            "",
            "The vocal of every training excerpt and of every held-out song is given a "
            "random gain (+-12 dB), gain riding and upward expansion before features are "
            "computed. On these songs it raised a 6 s excerpt's LRA by "
            f"{pert['excerpt_lra_increase_lu_mean']:.2f} LU on average (sd "
            f"{pert['excerpt_lra_increase_lu_sd']:.2f}) and a whole song's by "
            f"{pert['song_lra_increase_lu_mean']:.2f} LU. The LRA comparison therefore "
            "measures how well each method undoes a *synthetic* raw-take model: no raw "
            "takes of these songs exist, and the baseline's LRA error is mostly that "
            "increase.",
            "",
        ]
    if n < 20:
        lines += [
            "## What this rests on",
            "",
            f"{n} songs. With leave-one-song-out the model learns from {n - 1} songs, the "
            "constant predictor is the mean of those songs, and a single song moves every "
            "MAE by a large fraction of itself; no difference here is statistically "
            "meaningful. The machinery is built for a real set: "
            "`vocalmix evaluate --data /path/to/musdb18hq --report DIR` (150 songs in "
            "`train/` and `test/` song folders) and `vocalmix train` read it as it is. "
            "What would settle the question is many professionally mixed songs across "
            "genres and arrangements (the lead-to-accompaniment ratio follows genre and "
            "solo-vs-band, JASA Express Letters 3, 043201, 2023), i.e. at least MUSDB18-HQ, "
            "ideally with raw takes of the same vocals to replace the synthetic raw-take "
            "model in the LRA comparison.",
            "",
        ]
    return "\n".join(lines)


def write_level_report(res: dict, out: str | Path) -> Path:
    """``report.md``, ``results.json``, ``scatter.png`` and ``errors.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    text = level_report_markdown(res)
    try:
        _level_plots(res, out)
    except ImportError:
        text += "\n(plots need matplotlib: pip install 'vocalmix[plot]')\n"
    p = out / "report.md"
    p.write_text(text, encoding="utf-8")
    return p


_COLORS = {"baseline": "tab:blue", "constant": "tab:gray", "model": "tab:orange"}


def _level_plots(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["songs"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    for ax, key in zip(axes, KEYS, strict=True):
        hv = [r["human"][key] for r in rows]
        allv = hv + [r["predicted"][m][key] for r in rows for m in METHODS]
        for m in METHODS:
            ax.scatter(hv, [r["predicted"][m][key] for r in rows], label=m, color=_COLORS[m],
                       s=45, alpha=0.85)
        lo, hi = min(allv) - 1, max(allv) + 1
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"human {LABELS[key]} (LU)")
        ax.set_ylabel(f"predicted {LABELS[key]} (LU)")
        ax.legend(fontsize=8)
    fig.suptitle(f"leave-one-song-out, {res['n_songs']} songs")
    fig.tight_layout()
    fig.savefig(out / "scatter.png", dpi=80)
    plt.close(fig)
    names = [r["song"] for r in rows]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    wbar = 0.8 / len(METHODS)
    for ax, key in zip(axes, ("vocal_to_mix_lu", "vocal_lra_lu"), strict=True):
        for j, m in enumerate(METHODS):
            ax.bar(x + (j - 1) * wbar, [r["error"][m][key] for r in rows], wbar, label=m,
                   color=_COLORS[m])
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, [n if len(n) <= 24 else n[:22] + "..." for n in names],
                      rotation=20 if len(names) <= 12 else 90, ha="right", fontsize=7)
        ax.set_ylabel(f"{LABELS[key]} error, LU (predicted - human)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=80)
    plt.close(fig)


# --- the corrective EQ -------------------------------------------------------------------


def write_eq_report(res: dict, out: Path) -> Path:
    """Corrective-EQ figures (``eq_report.md``, ``eq_results.json``) and a plot
    (``eq_example.png``: one example's curves, before/after distances of every test, and
    how much natural vocals differ per band against the damage the random EQs do)."""
    out.mkdir(parents=True, exist_ok=True)
    ex = res.get("example")
    (out / "eq_results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    pct = 100 * res["fraction_removed"]
    lines = [
        "# Corrective EQ: held-out singers given a random EQ",
        "",
        f"Protocol: {res['protocol']}. {res['n_excerpts']} vocal excerpts of "
        f"{res['n_songs']} songs by {res['n_singers']} singers; {res['n_tests']} rendered "
        f"tests with a random EQ, {res['n_clean_tests']} without. Reproduce: "
        "`vocalmix evaluate --eq --data ../shared/data --report docs/evaluation`.",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| log-spectral distance to the original after the random EQ, dB | "
        f"{res['lsd_before_db']:.2f} |",
        f"| ... after the predicted correction, dB | {res['lsd_after_db']:.2f} |",
        f"| fraction of the damage removed (goal: at least 60%) | {pct:.1f}% |",
        f"| EQ'd vocals the gate let a correction through for | "
        f"{100 * res['fraction_applied']:.0f}% |",
        f"| ... damage removed on those | "
        f"{100 * (res.get('fraction_removed_when_applied') or 0.0):.0f}% |",
        f"| EQ'd vocals made worse | {100 * res['fraction_made_worse']:.0f}% |",
        f"| distance added to vocals that were not EQ'd, dB (goal: 0) | "
        f"{res['clean_lsd_added_db']:.3f} |",
        f"| un-EQ'd vocals given a correction | {100 * res['clean_fraction_touched']:.0f}% |",
        "",
        "By how much damage the random EQ did:",
        "",
        "| distance before, dB | tests | before, dB | after, dB | removed |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in res["by_damage"]:
        hi = "" if r["before_to_db"] is None else f"{r['before_to_db']:g}"
        lines.append(f"| {r['before_from_db']:g}-{hi} | {r['n']} | {r['lsd_before_db']:.2f} | "
                     f"{r['lsd_after_db']:.2f} | {100 * r['fraction_removed']:.1f}% |")
    sd = res["natural_sd_per_band_db"]
    lines += [
        "",
        "Why: a held-out singer's level-normalised 1/3-octave spectrum differs from the "
        f"other singers' mean by {res['natural_rms_deviation_db']:.1f} dB RMS "
        f"(per band: {min(sd):.1f} to {max(sd):.1f} dB), more than twice the damage the "
        "random EQs do, and only that difference can tell an EQ from a voice. The "
        "estimator (posterior mean over a bank of the random EQs, natural vocals "
        "modelled as a Gaussian learned from the training singers) is the optimal one "
        "for that model; its gate, chosen by cross-validation inside the training "
        "singers, holds a correction back unless it is confident, which keeps the harm "
        "to un-EQ'd vocals small and the benefit small too.",
        "",
    ]
    if ex is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from vocalmix.estimators.eq import CENTRES_HZ

        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        ax = axes[0]
        for key, label in (("original", "original"), ("damaged", "after random EQ"),
                           ("corrected", "after predicted correction")):
            ax.semilogx(CENTRES_HZ, ex[key], label=label)
        ax.set_title(f"the median corrected test ({ex['song']})")
        ax.set_xlabel("frequency, Hz (1/3 octave)")
        ax.set_ylabel("level re mean, dB")
        ax.legend(fontsize=8)
        ax = axes[1]
        t = res.get("tests", [])
        if t:
            b = np.array([r["before_db"] for r in t])
            a = np.array([r["after_db"] for r in t])
            on = np.array([r["applied"] for r in t])
            ax.scatter(b[~on], a[~on], s=8, c="0.6", label="not corrected (gate)")
            ax.scatter(b[on], a[on], s=10, c="C3", label="corrected")
            lim = float(max(b.max(), a.max()) * 1.05)
            ax.plot([0, lim], [0, lim], "k--", lw=0.8)
            ax.set_xlabel("distance before correction, dB")
            ax.set_ylabel("distance after, dB")
            ax.set_title("every rendered test")
            ax.legend(fontsize=8)
        ax = axes[2]
        ax.semilogx(CENTRES_HZ, sd, "o-", label="natural: held-out singer vs others (SD)")
        if "damage_rms_per_band_db" in res:
            ax.semilogx(CENTRES_HZ, res["damage_rms_per_band_db"], "s-",
                        label="damage of the random EQs (RMS)")
        ax.set_xlabel("frequency, Hz")
        ax.set_ylabel("dB")
        ax.set_title("why it is hard")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "eq_example.png", dpi=90)
        plt.close(fig)
        lines.append("![one example, every test, and the natural spread](eq_example.png)")
    p = out / "eq_report.md"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


# --- the reverb model --------------------------------------------------------------------


_ROWS = (("decay_s", "decay (T30 at 1 kHz), s", "{:.2f}"),
         ("log_decay", "decay, abs log ratio", "{:.2f}"),
         ("log_hf_ratio", "damping (4 kHz / 1 kHz decay), abs log ratio", "{:.2f}"),
         ("pre_delay_ms", "pre-delay, ms", "{:.1f}"),
         ("wet_level_db", "wet level (reverberant-to-direct), dB", "{:.1f}"))


def _table(block: dict, keys=None) -> list[str]:
    lines = ["| parameter | estimator MAE | constant MAE |", "| --- | ---: | ---: |"]
    for k, label, fmt in _ROWS:
        if keys is not None and k not in keys:
            continue
        e, c = block["estimator"].get(k), block["constant"].get(k)
        if e is None:
            continue
        lines.append(f"| {label} | {fmt.format(e)} | {fmt.format(c)} |")
    return lines


def _reverb_plots(res: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    h = res.get("held_out")
    if h and h.get("scatter", {}).get("true"):
        t, p = np.array(h["scatter"]["true"]), np.array(h["scatter"]["pred"])
        fig, axes = plt.subplots(2, 2, figsize=(9.5, 8), layout="constrained")
        spec = [(0, "decay (T30 at 1 kHz), s", True), (1, "damping: 4 kHz / 1 kHz decay", True),
                (2, "pre-delay, ms", False), (3, "wet level, dB", False)]
        for ax, (j, label, log) in zip(axes.ravel(), spec, strict=True):
            sc = ax.scatter(t[:, j], p[:, j], s=6, alpha=0.5, c=t[:, 3], cmap="viridis")
            lo, hi = float(min(t[:, j].min(), p[:, j].min())), float(max(t[:, j].max(),
                                                                        p[:, j].max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
            if log:
                from matplotlib.ticker import NullFormatter, ScalarFormatter

                ax.set_xscale("log")
                ax.set_yscale("log")
                ticks = [0.3, 0.5, 1.0, 2.0, 4.0] if j == 0 else [0.3, 0.5, 0.7, 1.0]
                for axis in (ax.xaxis, ax.yaxis):
                    axis.set_major_formatter(ScalarFormatter())
                    axis.set_minor_formatter(NullFormatter())
                    axis.set_ticks(ticks)
            ax.set_xlabel(f"true {label}")
            ax.set_ylabel("estimated")
        fig.suptitle(f"Estimator on held-out IRs ({h['n_test_examples']} wet vocals of "
                     f"validation singers; colour: true wet level, dB)")
        fig.colorbar(sc, ax=axes, shrink=0.6)
        fig.savefig(out / "reverb_estimator.png", dpi=80)
        plt.close(fig)
        made.append("reverb_estimator.png")
    lo = res.get("loso")
    if lo and lo["songs"]:
        rows = lo["songs"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        x = np.arange(len(rows))
        for ax, key, label in ((axes[0], "decay_s", "decay, s"),
                               (axes[1], "wet_level_db", "wet level, dB")):
            for i, (meth, name) in enumerate((("truth", "engineers (estimated)"),
                                              ("rule", "baseline rule"),
                                              ("constant", "constant"), ("model", "model"))):
                ax.bar(x + (i - 1.5) * 0.2, [r[meth][key] for r in rows], 0.2, label=name)
            ax.set_xticks(x, [r["song"][:22] for r in rows], fontsize=8)
            ax.set_ylabel(label)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Reverb chosen by the engineers vs predictions, leave-one-song-out "
                     f"({len(rows)} songs)")
        fig.tight_layout()
        fig.savefig(out / "reverb_songs.png", dpi=80)
        plt.close(fig)
        made.append("reverb_songs.png")
    return made


def _rule_sentence(lo: dict) -> str:
    rows = lo["songs"]
    below = all(r["truth"]["decay_s"] < r["rule"]["decay_s"] for r in rows)
    lo_s, hi_s = (min(r["rule"]["decay_s"] for r in rows), max(r["rule"]["decay_s"]
                                                                for r in rows))
    if below:
        return ("Every decay read on these stems lies below the tempo rule's "
                f"({lo_s:.1f}-{hi_s:.1f} s for their tempi), which the intercepts of the model "
                "and the constant learn from the other songs; ")
    return "The intercepts of the model and the constant are learned from the other songs; "


def _label_sources(meta: dict) -> str:
    from collections import Counter

    c = Counter(i.get("labels", "?") for i in meta.get("irs", []))
    return ", ".join(f"{v} IRs {k}" for k, v in sorted(c.items())) or "no IRs"


def write_reverb_report(res: dict, out: str | Path) -> Path:
    """Write ``reverb_report.md``, ``reverb_results.json`` and the plots
    (``reverb_estimator.png``, ``reverb_songs.png``) into ``out``; returns the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    import re

    text = json.dumps(res, indent=1)
    text = re.sub(r"\[\s*([-0-9.eE+,\s]+?)\s*\]",  # numeric arrays on one line
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    (out / "reverb_results.json").write_text(text + "\n", "utf-8")
    plots = _reverb_plots(res, out)
    meta, h, lo = res["meta"], res.get("held_out"), res.get("loso")
    L = ["# Reverb: what the engineers chose, and predicting it", "",
         "Generated by `vocalmix evaluate --reverb` (module `vocalmix.training.reverb`, "
         f"seed {meta['seed']}, {meta['date']}).", ""]
    if h:
        pe = h["per_example"]
        L += ["## 1. The estimator on held-out impulse responses", "",
              f"{h['n_examples']} wet vocals in all: dry vocals of {h['n_train_singers']} "
              f"training and {h['n_val_singers']} validation singers through the synthetic "
              f"reverb at random parameters and through {h['n_irs']} impulse responses "
              f"({h['n_rooms']} rooms or plug-in settings groups) used as a send, then "
              "processed like a mixed stem (random EQ, compression, gate/expander, noise). "
              f"The IR groups are dealt into {h['n_folds']} folds; each fold's IRs are "
              "tested on validation singers only, with an estimator trained without those "
              f"IRs and singers: {h['n_test_examples']} held-out wet vocals. The constant "
              "predicts the training labels' mean. Labels: exact for the synthetic reverb; "
              "for an IR, the wet level and the added pre-delay are exact by construction "
              "(plus the IR's own onset after its direct sound), the decay and damping are "
              "the IR's fitted synthetic parameters where `docs/evaluation/reverb_fit.json` "
              f"has them, else its T30 at 1 and 4 kHz measured (ISO 3382, Schroeder): "
              f"{_label_sources(meta)}. The network's size and penalty (16 tanh units, "
              "L2 0.01) were picked among five settings on these same folds (they all "
              "scored within 0.02 of each other in decay abs log ratio).", "",
              "Per held-out wet vocal:", ""] + _table(pe) + [""]
        a = h["wet_ge_minus15db"]
        L += [f"Wet level -15 dB or more ({a['n']} of them, a clearly audible reverb):", ""]
        L += _table(a) + [""]
        if h.get("per_ir"):
            pi = h["per_ir"]
            each = h["n_test_examples"] // max(1, pi["n_irs"])
            L += [f"Per IR (predictions averaged over its {each} or so vocals; "
                  f"{pi['n_irs']} IRs):", ""]
            L += _table(pi, ("decay_s", "log_decay", "log_hf_ratio")) + [""]
        L += ["By true wet level (per wet vocal): the decay and damping of a faint reverb "
              "cannot be read, the estimator then falls back toward the middle of its range:",
              "", "| wet level, dB | vocals | decay est., s | decay const., s | decay est., "
              "abs log | decay const., abs log | pre-delay est., ms | wet est., dB "
              "| wet const., dB |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for b in h.get("by_wet_level", []):
            e, c = b["estimator"], b["constant"]
            L.append(f"| {b['wet_from_db']:+.0f} to {b['wet_to_db']:+.0f} | {b['n']} | "
                     f"{e['decay_s']:.2f} | {c['decay_s']:.2f} | {e['log_decay']:.2f} | "
                     f"{c['log_decay']:.2f} | {e['pre_delay_ms']:.1f} | "
                     f"{e['wet_level_db']:.1f} | {c['wet_level_db']:.1f} |")
        L += ["", "By IR origin (per wet vocal; decay abs log ratio, wet level dB):", "",
              "| origin | IRs | vocals | decay est. | decay const. | wet est. | wet const. |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for o, b in h["by_origin"].items():
            L.append(f"| {o} | {b['n_irs']} | {b['n_examples']} | "
                     f"{b['estimator']['log_decay']:.2f} | {b['constant']['log_decay']:.2f} | "
                     f"{b['estimator']['wet_level_db']:.1f} | "
                     f"{b['constant']['wet_level_db']:.1f} |")
        if h.get("dry_validation_clips"):
            d = h["dry_validation_clips"]
            md, p10, p90 = d["median"], d["p10"], d["p90"]
            L += ["", f"On the validation singers' dry clips as recorded ({d['n']} clips, no "
                      "reverb added; karaoke takes are close to dry, not anechoic) it reads a "
                      f"wet level of {md['wet_level_db']:+.1f} dB (10th-90th percentile "
                      f"{p10['wet_level_db']:+.1f} to {p90['wet_level_db']:+.1f}) and a decay "
                      f"of {md['decay_s']:.2f} s ({p10['decay_s']:.2f} to {p90['decay_s']:.2f})."]
        if h.get("synthetic_validation"):
            sv = h["synthetic_validation"]
            L += ["", f"Synthetic reverb at random parameters on validation singers "
                      f"({sv['n']} vocals, exact labels):", ""] + _table(sv)
        L += [""]
        if "reverb_estimator.png" in plots:
            L += ["![estimator on held-out IRs](reverb_estimator.png)", ""]
    dry = (h or {}).get("dry_validation_clips")
    faint = dry["p90"]["wet_level_db"] + 3.0 if dry else None
    L += ["## 2. The reverb the engineers chose", "",
          f"The estimator (trained on all {meta['n_examples']} examples) read on the mixed "
          f"vocal stems of the {meta['n_songs']} songs with level information (mean over "
          "8 s excerpts in which the voice sings). These are estimates with the errors "
          "above, not measurements.", "",
          "| song | excerpts | decay, s | 4 kHz ratio | pre-delay, ms | wet, dB | tempo, BPM "
          "| tempo rule, s |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    n_faint = 0
    for r in meta["songs"]:
        c = r["choice"]
        mark = ""
        if faint is not None and c["wet_level_db"] <= faint:
            mark, n_faint = " *", n_faint + 1
        L.append(f"| {r['song']}{mark} | {r['n_excerpts']} | {c['decay_s']:.2f} | "
                 f"{c['hf_ratio']:.2f} | {c['pre_delay_ms']:.0f} | {c['wet_level_db']:+.1f} | "
                 f"{r['tempo_bpm']:.0f} | {r['tempo_rule_decay_s']:.2f} |")
    if n_faint:
        L += ["", f"\\* {n_faint} of the {meta['n_songs']} stems read no wetter than a dry take "
                  f"does (at most {faint:+.1f} dB, 3 dB above the 90th percentile of the dry "
                  "clips): for them the estimator cannot tell a faint reverb from none, and "
                  "the decay, damping and pre-delay it reads are in the range where it is "
                  "little better than a constant (first row of the wet-level table)."]
    L += [""]
    if lo:
        n = lo["n_songs"]
        L += ["## 3. Predicting the choice from the backing", "",
              f"Ridge regressions on the backing's tempo, onset density and own reverberance, "
              f"intercepts shrunk toward the baseline's rule ({PRIOR_SONGS:g} song's worth), "
              f"features clipped to the training range; leave-one-song-out over **{n} "
              f"songs** (each prediction learned from {n - 1}). Errors against the estimated "
              "choice above:", "",
              "| method | decay, s | decay, abs log ratio | damping, abs log ratio | pre-delay, ms "
              "| wet, dB |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        names = {"model": "model", "rule": "baseline (tempo rule; -14 dB, 20 ms)",
                 "constant": "constant (other songs' mean)"}
        for meth in ("rule", "constant", "model"):
            s = lo["summary"].get(meth)
            if s:
                L.append(f"| {names[meth]} | {s['decay_s']:.2f} | {s['log_decay']:.2f} | "
                         f"{s['log_hf_ratio']:.2f} | {s['pre_delay_ms']:.1f} | "
                         f"{s['wet_level_db']:.1f} |")
        L += ["", "| song | engineers (est.), s | rule, s | constant, s | model, s |",
              "| --- | ---: | ---: | ---: | ---: |"]
        for r in lo["songs"]:
            L.append(f"| {r['song']} | {r['truth']['decay_s']:.2f} | {r['rule']['decay_s']:.2f}"
                     f" | {r['constant']['decay_s']:.2f} | {r['model']['decay_s']:.2f} |")
        if lo.get("sensitivity"):
            L += ["", "The model's leave-one-song-out error as the ridge penalty (alpha, in "
                      "songs) and the prior's weight on the intercepts (in songs) change "
                      f"(shipped: alpha {lo['alpha']:g}, prior {lo['prior_songs']:g}, as the "
                      "level model):", "",
                  "| alpha | prior | decay, s | decay, abs log | wet, dB |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
            for r in lo["sensitivity"]:
                e = r["model"]
                L.append(f"| {r['alpha']:g} | {r['prior_songs']:g} | {e['decay_s']:.2f} | "
                         f"{e['log_decay']:.2f} | {e['wet_level_db']:.1f} |")
        L += ["", f"**{n} songs cannot show skill**: with so few, a single song decides any "
              "ranking, and the 'truth' itself carries the estimator's error, large for the "
              "stems marked * above. " + _rule_sentence(lo) +
              f"the backing features moved the held-out predictions by at most "
              f"{max(r['feature_shift']['log_decay'] for r in lo['songs']):.2f} in log decay "
              f"and {max(r['feature_shift']['wet_level_db'] for r in lo['songs']):.1f} dB in "
              "wet level" + (", and on the wet level the rule's -14 dB is closer"
                             if lo["summary"]["rule"]["wet_level_db"]
                             < lo["summary"]["model"]["wet_level_db"] else "") +
              ". The earlier prototype found "
              "reverb time and tempo uncorrelated on 100 MUSDB18 songs (r = -0.03), so the "
              "tempo rule is no ground truth either. What would settle it: the same "
              "estimator read on many mixed stems (MUSDB18-HQ's 150 songs: "
              "`train_reverb_model(out, data=[folder])`).", ""]
        if "reverb_songs.png" in plots:
            L += ["![per song](reverb_songs.png)", ""]
    p = out / "reverb_report.md"
    p.write_text("\n".join(L) + "\n", encoding="utf-8")
    return p


__all__ = [
    "level_report_markdown",
    "write_eq_report",
    "write_level_report",
    "write_reverb_report",
]
