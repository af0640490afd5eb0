"""The evaluation reports: markdown and plots for ``docs/evaluation``.

* the level model, cross-validated by artist (:func:`write_level_report`: ``report.md``,
  ``results.json``, ``scatter.png``, ``errors.png``), from
  :func:`vocalmix.training.level.evaluate_level_model`;
* the corrective EQ on held-out artists (:func:`write_eq_report`: ``eq_report.md``,
  ``eq_results.json``, ``eq_example.png``), from :func:`vocalmix.training.eq.evaluate_eq`;
* the dynamics model on held-out artists (:func:`write_dynamics_report`:
  ``dynamics_report.md``, ``dynamics_results.json``, ``dynamics.png``), from
  :func:`vocalmix.training.dynamics.evaluate_dynamics`;
* the reverb model (:func:`write_reverb_report`: ``reverb_report.md``,
  ``reverb_results.json``, ``reverb_estimator.png``, ``reverb_songs.png``), from
  :func:`vocalmix.training.reverb.reverb_report`.

Plots need matplotlib (the ``plot`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vocalmix.training.level import GOALS
from vocalmix.training.reverb import PRIOR_SONGS

# --- the level model ---------------------------------------------------------------------

_SHOWN = ("rule", "constant", "median", "model", "model+genre")
_SHORT = {"rule": "rule", "constant": "mean", "median": "median", "model": "model",
          "model+genre": "model + genre"}
_NAMES = {"rule": "-3 LU rule (`--method baseline`)", "constant": "constant (training mean)",
          "median": "constant (training median)", "model": "model (`--method model`)",
          "model+genre": "model + genre (`--genre`)"}


def _pm(d: dict, stat: str, nd: int = 2) -> str:
    return f"{d[stat]:.{nd}f} ± {d[stat + '_sd']:.{nd}f}"


def goal_check(summary: dict, method: str = "model") -> dict[str, dict]:
    """The project's goals for ``method``'s vocal-to-mix figures: each with the measured
    value, the bar and whether it is met."""
    m = summary[method]["vocal_to_mix_lu"]
    c = summary["constant"]["vocal_to_mix_lu"]["mae"]
    r = summary["rule"]["vocal_to_mix_lu"]["mae"]
    return {
        "mae_vs_constant": {"value": m["mae"] / c, "bar": GOALS["mae_vs_constant"],
                            "met": m["mae"] <= GOALS["mae_vs_constant"] * c},
        "mae_below_rule": {"value": m["mae"], "bar": r, "met": m["mae"] < r},
        "corr": {"value": m["corr"], "bar": GOALS["corr"], "met": m["corr"] >= GOALS["corr"]},
        "spread_ratio": {"value": m["spread_ratio"], "bar": GOALS["spread_ratio"],
                         "met": m["spread_ratio"] >= GOALS["spread_ratio"]},
    }


def level_report_markdown(res: dict) -> str:
    """The report's markdown text."""
    s, n = res["summary"], res["n_songs"]
    shown = [m for m in _SHOWN if m in s]
    genres = sorted({r["genre"] for r in res["rows"][0]})
    v2m = "vocal_to_mix_lu"
    lines = [
        "# Level balance: the vocal against the mix, cross-validated on human mixes",
        "",
        f"**{n} professionally mixed songs** by {res['n_artists']} artists "
        f"({res['n_examples']} training examples), {res['protocol']}: no artist is ever on "
        "both sides of a split, and in every fold the whole fitting procedure (feature set "
        "and penalties chosen by an inner cross-validation, also grouped by artist) runs on "
        "the training songs only. Every method's target for a held-out song is placed on "
        "the song's own stems as the resolver would place it (the exact gain on the stems' "
        "BS.1770 block sums), and the result is compared with the human mix. Each figure is "
        f"the mean over the {res['repeats']} fold seeds ± its sd across them. Reproduce: "
        "`vocalmix evaluate --level --data ../shared/data --report docs/evaluation`.",
        "",
        "The level is the vocal-to-mix ratio **while the vocal sings** "
        "(`targets.vocal_to_mix_measure = \"singing\"`): the vocal's loudness against the "
        "mix's over the 400 ms blocks that pass the vocal's own BS.1770-4 gates. The model "
        "learns it, the resolver solves for it, and the truth below is measured that way. "
        "The -3 LU rule aims at the *integrated* ratio, as it always has; its errors are "
        "measured where it actually puts the vocal.",
    ]
    skipped = res.get("skipped_without_level_info")
    test = res.get("test_split")
    if skipped or test:
        lines += [""]
        if test:
            lines.append(f"{len(test['rows'])} song(s) of MUSDB18's **test split** found "
                         "under the same folders were left out of all training and "
                         "choices; they are reported apart at the end.")
        if skipped:
            lines.append(f"{skipped} karaoke clip(s) were left out: both channels of those "
                         "sets were normalised, so their balance is not a mixing choice.")
    lines += [
        "",
        "## Vocal-to-mix while singing",
        "",
        "| method | MAE, LU | median AE, LU | bias, LU | correlation | spread ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in shown:
        d = s[m][v2m]
        lines.append(f"| {_NAMES[m]} | {_pm(d, 'mae')} | {_pm(d, 'median_ae')} | "
                     f"{d['bias']:+.2f} | {_pm(d, 'corr')} | {_pm(d, 'spread_ratio')} |")
    lines += [
        "",
        "Spread ratio: the sd of a method's balances over the songs divided by the sd of "
        "the human balances (1: as varied as the engineers; 0: one value for every song). "
        "Correlation: Pearson's, of a method's balances with the human ones. A constant "
        "puts every song at one ratio while singing, so its small spread and (negative) "
        "correlation only come from its value differing between folds; the rule's come "
        "from one *integrated* target giving different ratios while singing on different "
        "stems.",
        "",
        "### The goal",
        "",
        "| goal | bar | model | model + genre |",
        "| --- | ---: | ---: | ---: |",
    ]
    gm = goal_check(s, "model")
    gg = goal_check(s, "model+genre") if "model+genre" in s else None

    def cell(g: dict | None, key: str, fmt: str) -> str:
        if g is None:
            return "n/a"
        return f"{format(g[key]['value'], fmt)} ({'met' if g[key]['met'] else '**not met**'})"

    lines += [
        f"| MAE / constant's MAE | <= {GOALS['mae_vs_constant']:.2f} | "
        f"{cell(gm, 'mae_vs_constant', '.3f')} | {cell(gg, 'mae_vs_constant', '.3f')} |",
        f"| MAE below the -3 LU rule's, LU | < {gm['mae_below_rule']['bar']:.2f} | "
        f"{cell(gm, 'mae_below_rule', '.2f')} | {cell(gg, 'mae_below_rule', '.2f')} |",
        f"| correlation with the human mixes | >= {GOALS['corr']:.2f} | "
        f"{cell(gm, 'corr', '.2f')} | {cell(gg, 'corr', '.2f')} |",
        f"| spread ratio | >= {GOALS['spread_ratio']:.2f} | {cell(gm, 'spread_ratio', '.2f')}"
        f" | {cell(gg, 'spread_ratio', '.2f')} |",
        "",
    ]
    runnable = {"baseline": s["rule"][v2m]["mae"], "model": s["model"][v2m]["mae"]}
    best = "model" if runnable["model"] < runnable["baseline"] else "baseline"
    lines += [f"By these figures the default method (`vocalmix mix` without `--method`, "
              f"read from the shipped model's metadata) is **{best}**: of the methods "
              "`vocalmix mix` can run, the one with the lowest MAE above.", ""]
    lines += [
        "## The other figures",
        "",
        "| method | vocal-to-mix integrated MAE | vocal-to-backing MAE | vocal LRA MAE |",
        "| --- | ---: | ---: | ---: |",
    ]
    for m in shown:
        lines.append(f"| {_NAMES[m]} | {_pm(s[m]['vocal_to_mix_integrated_lu'], 'mae')} | "
                     f"{_pm(s[m]['vocal_to_backing_lu'], 'mae')} | "
                     f"{_pm(s[m]['vocal_lra_lu'], 'mae')} |")
    lines += [
        "",
        "LRA: the model's LRA head on the raw-take-perturbed input against the mixed "
        "vocal's LRA; the rule keeps the input's LRA up to 14 LU; the constants use the "
        "training songs' mean LRA. On 6.8 s excerpts a loudness range rests on about 40 "
        "short-term values, so these figures describe short excerpts, not songs.",
        "",
        "## Per genre (vocal-to-mix while singing, MAE in LU, pooled over the repeats)",
        "",
        "| genre | songs | " + " | ".join(_SHORT[m] for m in shown) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in shown) + " |",
    ]
    for g in genres:
        lines.append(f"| {g} | {s[shown[0]]['by_genre'][g]['n_songs']} | " + " | ".join(
            f"{s[m]['by_genre'][g]['mae']:.2f}" for m in shown) + " |")
    lines += ["", "![predicted vs human](scatter.png)", "",
              "![error per genre](errors.png)", ""]
    if test:
        lines += [
            "## MUSDB18 test-split songs (never trained or tuned on)",
            "",
            "The model trained on all the songs above, applied to the test-split songs found "
            "in the data (their genre is unknown to vocalmix, so only the model without "
            "genre applies). Too few to measure anything; listed so that nothing is hidden.",
            "",
            "| song | human | rule | constant | model |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for r in test["rows"]:
            p = r["predicted"]
            lines.append(f"| {r['song']} | {r['human'][v2m]:+.2f} | "
                         f"{p['rule'][v2m]:+.2f} | {p['constant'][v2m]:+.2f} | "
                         f"{p['model'][v2m]:+.2f} |")
        lines.append("")
    sens = res.get("sensitivity")
    if sens:
        lines += [
            "## How much the result depends on the choices",
            "",
            "The model above chooses its feature set and penalty inside every training "
            "fold. With them held fixed instead (the same protocol otherwise), the model "
            "without genre measures:",
            "",
            "| feature set | alpha (songs) | MAE, LU | correlation | spread ratio |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for v in sens["fixed"].values():
            lines.append(f"| {v['feature_set']} | {v['alpha']:g} | {v['mae']:.3f} | "
                         f"{v['corr']:.2f} | {v['spread_ratio']:.2f} |")
        lines += [
            "",
            "The best fixed setting is chosen in hindsight on the evaluation folds "
            "themselves, so it is optimistic; the gap between it and the model above is "
            "what choosing honestly costs with this few songs.",
            "",
            "Rank correlation (Spearman) of each feature, averaged over a song's examples, "
            "with the human balance while singing, over the training songs:",
            "",
            "| feature | rho |",
            "| --- | ---: |",
        ]
        for f, v in sorted(sens["spearman"].items(), key=lambda kv: -abs(kv[1])):
            lines.append(f"| `{f}` | {v:+.2f} |")
        lines.append("")
    pert = res.get("perturbation", {})
    if pert:
        lines += [
            "## The raw-take perturbation",
            "",
            "The vocal of every training excerpt and of every held-out song is given a "
            "random gain (+-12 dB), gain riding and upward expansion before features are "
            "computed, so no feature can read the mix's balance or dynamics. On these songs "
            "it raised a 6 s excerpt's LRA by "
            f"{pert['excerpt_lra_increase_lu_mean']:.2f} LU on average (sd "
            f"{pert['excerpt_lra_increase_lu_sd']:.2f}) and a whole song's by "
            f"{pert['song_lra_increase_lu_mean']:.2f} LU.",
            "",
        ]
    c = s["constant"][v2m]["mae"]
    failed = [k for k, v in gm.items() if not v["met"]]
    hv = np.array([r["human"][v2m] for r in res["rows"][0]])
    lines += [
        "## What this rests on",
        "",
        f"{n} excerpts of about 7 s, one per song, by {res['n_artists']} artists; a song's "
        "balance in one excerpt stands for its mix. The human balances span "
        f"{hv.min():+.1f} to {hv.max():+.1f} LU (sd {hv.std():.2f} LU); one song moves an "
        f"MAE by up to {(hv.max() - hv.min()) / n:.2f} LU, and the sd across fold seeds "
        "above is only the part of the uncertainty that the choice of folds causes.",
        "",
    ]
    if failed:
        rho = max((abs(v) for v in (sens or {}).get("spearman", {}).values()), default=None)
        rho_text = (f"no feature's rank correlation with the human balance exceeds "
                    f"{rho:.2f} (table above); " if rho is not None else "")
        lines += [
            f"Not met: {', '.join(failed)}. The model removes "
            f"{100 * (1 - gm['mae_vs_constant']['value']):.0f}% of the constant's error "
            f"(the goal asks for {100 * (1 - GOALS['mae_vs_constant']):.0f}%). The "
            "level-invariant features describe the arrangement (density, dynamics, "
            f"brightness, drums) and the voice; on these songs {rho_text}most of the spread "
            f"of the human balances (constant's MAE {c:.2f} LU) is not explained by "
            "anything the audio shows here. See `level_model_notes.md` for what was tried "
            "and what data would settle it.",
            "",
        ]
    return "\n".join(lines)


def _write_level_report(res: dict, out: str | Path) -> Path:
    """``report.md``, ``results.json``, ``scatter.png`` and ``errors.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lean = dict(res, rows=[[{k: v for k, v in r.items() if k != "error"} for r in rows]
                           for rows in res["rows"]])  # errors follow from the rows
    (out / "results.json").write_text(json.dumps(_rounded(lean), separators=(",", ":"))
                                      + "\n", encoding="utf-8")
    text = level_report_markdown(res)
    try:
        _level_plots(res, out)
    except ImportError:
        text += "\n(plots need matplotlib: pip install 'vocalmix[plot]')\n"
    p = out / "report.md"
    p.write_text(text, encoding="utf-8")
    return p


def _rounded(obj: object, nd: int = 4) -> object:
    """``obj`` with every float rounded to ``nd`` decimals (a smaller results file)."""
    if isinstance(obj, float):
        return round(obj, nd)
    if isinstance(obj, dict):
        return {k: _rounded(v, nd) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, nd) for v in obj]
    return obj


_COLORS = {"rule": "tab:blue", "constant": "tab:gray", "median": "tab:olive",
           "model": "tab:orange", "model+genre": "tab:red"}


def _level_plots(res: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "vocal_to_mix_lu"
    shown = [m for m in ("rule", "constant", "model", "model+genre") if m in res["summary"]]
    songs = [r["song"] for r in res["rows"][0]]
    human = np.array([r["human"][key] for r in res["rows"][0]])
    by = {r_["song"]: i for i, r_ in enumerate(res["rows"][0])}
    pred = {m: np.zeros(len(songs)) for m in shown}
    for rows in res["rows"]:
        for r in rows:
            for m in shown:
                pred[m][by[r["song"]]] += r["predicted"][m][key] / len(res["rows"])
    lo, hi = float(min(human.min(), *(p.min() for p in pred.values()))) - 0.5, 0.0
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.9), sharey=True)
    for ax, m in zip(np.atleast_1d(axes), shown, strict=True):
        ax.scatter(human, pred[m], s=18, color=_COLORS[m], alpha=0.8)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        st = res["summary"][m][key]
        ax.set_title(f"{m}: MAE {st['mae']:.2f}, r {st['corr']:.2f}", fontsize=9)
        ax.set_xlabel("human vocal-to-mix while singing, LU")
    np.atleast_1d(axes)[0].set_ylabel("method's placement, LU (mean over repeats)")
    fig.suptitle(f"{res['protocol']}, {res['n_songs']} songs", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "scatter.png", dpi=80)
    plt.close(fig)
    genres = sorted({r["genre"] for r in res["rows"][0]})
    x = np.arange(len(genres))
    wbar = 0.8 / len(shown)
    fig, ax = plt.subplots(figsize=(10, 4))
    for j, m in enumerate(shown):
        ax.bar(x + (j - (len(shown) - 1) / 2) * wbar,
               [res["summary"][m]["by_genre"][g]["mae"] for g in genres], wbar, label=m,
               color=_COLORS[m])
    ax.set_xticks(x, [f"{g}\n({res['summary'][shown[0]]['by_genre'][g]['n_songs']})"
                      for g in genres], fontsize=7)
    ax.set_ylabel("vocal-to-mix MAE while singing, LU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "errors.png", dpi=80)
    plt.close(fig)


# --- the corrective EQ -------------------------------------------------------------------


def _write_eq_report(res: dict, out: Path) -> Path:
    """Corrective-EQ figures (``eq_report.md``, ``eq_results.json``) and a plot
    (``eq_example.png``: one example's curves, before/after distances of every test, and
    how much finished vocals differ per band against the damage the random EQs do)."""
    out.mkdir(parents=True, exist_ok=True)
    ex = res.get("example")
    (out / "eq_results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    pct = 100 * res["fraction_removed"]
    seeds = ", ".join(f"{100 * r['fraction_removed']:.1f}%" for r in
                      res.get("fraction_removed_per_seed", []))
    lines = [
        "# Corrective EQ: held-out artists' finished vocals given a random EQ",
        "",
        f"Protocol: {res['protocol']}. {res['n_excerpts']} professionally mixed vocal "
        f"stems ({res['n_songs']} songs by {res['n_artists']} artists; MUSDB18's test "
        f"songs left out); {res['n_tests']} rendered tests with a random EQ (one to four "
        f"peak or shelf bands, +-12 dB), {res['n_clean_tests']} without. Reproduce: "
        "`vocalmix evaluate --eq --data ../shared/data --report docs/evaluation`.",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| log-spectral distance to the original after the random EQ, dB | "
        f"{res['lsd_before_db']:.2f} |",
        f"| ... after the predicted correction, dB | {res['lsd_after_db']:.2f} |",
        f"| fraction of the damage removed (goal: at least 60%) | **{pct:.1f}%** |",
        f"| ... per seed | {seeds} |",
        f"| EQ'd vocals the gate let a correction through for | "
        f"{100 * res['fraction_applied']:.0f}% |",
        f"| ... damage removed on those | "
        f"{100 * (res.get('fraction_removed_when_applied') or 0.0):.0f}% |",
        f"| EQ'd vocals made worse | {100 * res['fraction_made_worse']:.0f}% |",
        f"| distance added to vocals that were not EQ'd, dB (goal: at most 0.5) | "
        f"**{res['clean_lsd_added_db']:.2f}** |",
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
    dm = res["damage_rms_per_band_db"]
    mid = [v for v, c in zip(sd, res["centres_hz"], strict=True) if 250 <= c <= 10000]
    lines += [
        "",
        "## Why the goal is out of reach here",
        "",
        "The estimator sees the EQ only through the vocal's spectrum, where it adds to "
        "the voice and to the engineer's own EQ. A held-out artist's finished vocal "
        "differs from the other finished vocals' mean by "
        f"**{res['natural_rms_deviation_db']:.1f} dB RMS** (per band {min(sd):.1f} to "
        f"{max(sd):.1f} dB; {min(mid):.1f} to {max(mid):.1f} dB from 250 Hz up, more "
        "below, where the notes sung in a few seconds decide what is there), while the "
        f"random EQs do **{res['damage_rms_db']:.1f} dB RMS** of damage (per band "
        f"{min(dm):.1f} to {max(dm):.1f} dB). Engineers' own EQ moves are of the same size "
        "and kind (the DiffVox presets' EQ curves: 3.5 to 5.4 dB sd per band above "
        "200 Hz, docs/evaluation/diffvox.md): a random EQ on a finished vocal looks like "
        "another finished vocal. If every band were independent and Gaussian, the best "
        "linear estimate would remove about "
        f"**{100 * res['wiener_bound']:.0f}%** of the damage (the Wiener bound from those "
        "two spreads). The posterior mean over the bank of random EQs, with the "
        "finished vocals' Gaussian as the prior, removed "
        f"{100 * res.get('band_domain_fraction_removed', float('nan')):.0f}% in the band "
        "domain (each fold's inner cross-validation, gate included), and "
        f"{pct:.0f}% fitted to editable bands and rendered "
        "(the gate, chosen inside each fold's training artists for at most 0.5 dB of "
        "harm to vocals that were not EQ'd, holds most corrections back). Also tried on "
        "the 88 MUSDB18 stems, in the band domain: a second "
        "statistic (each band's 10th percentile of the frames' relative levels, as in the "
        "karaoke model) and a third (their median) removed less; a kernel prior (one "
        "Gaussian per training vocal) removed less; conditioning the finished vocal's "
        "spectrum on the backing's (a ridge map, folds by artist) left a larger error "
        "than the plain mean. Reaching 60% would need evidence of the EQ that a "
        "vocal's long-term spectrum does not carry (a reference take, or many songs of "
        "the same singer and engineer).",
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
        ax.set_title(f"the median corrected test ({ex['song']})", fontsize=9)
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
            ax.plot([0, lim], [0, 0.4 * lim], ":", c="C2", lw=1, label="60% removed")
            ax.set_xlabel("distance before correction, dB")
            ax.set_ylabel("distance after, dB")
            ax.set_title("every rendered test")
            ax.legend(fontsize=8)
        ax = axes[2]
        ax.semilogx(CENTRES_HZ, sd, "o-", label="finished vocals: held-out artist vs others (SD)")
        ax.semilogx(CENTRES_HZ, dm, "s-", label="damage of the random EQs (RMS)")
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


# --- the dynamics model ------------------------------------------------------------------


def _write_dynamics_report(res: dict, out: str | Path) -> Path:
    """Dynamics figures (``dynamics_report.md``, ``dynamics_results.json``) and a plot
    (``dynamics.png``: processed against human momentary range per method)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dynamics_results.json").write_text(json.dumps(res, indent=1) + "\n", "utf-8")
    s = res["summary"]
    fin = res["finished_inputs"]
    rs = res["raw_simulation"]
    mv = res["momentary_vs_lra"]
    comp = res["compressor"]
    names = {"rule": f"baseline rule (LRA {res['rule_lra_lu']:g} LU)",
             "constant": "constant (training songs' geometric mean)", "model": "model"}
    best = min(s, key=lambda m: s[m]["mae_lu"])
    L = [
        "# Dynamics: the vocal's momentary loudness range after compression",
        "",
        f"Protocol: {res['protocol']}. **{res['n_songs']} professionally mixed songs** by "
        f"{res['n_artists']} artists (MUSDB18's test songs left out), {res['n_tests']} "
        f"tests. Compressor: ratio {comp['ratio']:.2f} (raised by the resolver when it "
        f"cannot reach a target), attack {comp['attack_ms']:g} ms, release "
        f"{comp['release_ms']:g} ms: the engineers' medians (DiffVox), converted to "
        "pedalboard's time constants; hard knee (pedalboard's compressor has none). "
        "Reproduce: `vocalmix evaluate --dynamics --data ../shared/data --report "
        "docs/evaluation` (generated "
        f"{res['date']}).",
        "",
        "## Which statistic, and why",
        "",
        "The **momentary loudness range**: EBU Tech 3342's loudness range (gates, 10th to "
        "95th percentile) computed on 400 ms momentary loudness instead of 3 s "
        "short-term loudness: the spread of the vocal's loudness while it sings. The "
        "excerpts are 6.8 s long; LRA's 3 s windows overlap so much there that two are "
        f"independent, and LRA on these stems is {mv['lra_median_lu']:.1f} LU at the "
        f"median ({mv['lra_p10_lu']:.1f} to {mv['lra_p90_lu']:.1f}, 10th-90th "
        "percentile), a figure about the window more than the singing; the momentary "
        f"range is {mv['momentary_median_lu']:.1f} LU ({mv['momentary_p10_lu']:.1f} to "
        f"{mv['momentary_p90_lu']:.1f}) from about 17 independent windows. LRA stays "
        "measured and reported (`achieved.vocal_lra_lu`); on a long input the compressor "
        "that narrows the momentary range narrows LRA too.",
        "",
        "## Held-out songs: processed vocal against the human mix",
        "",
        "Each held-out finished vocal is made to look like a raw take (an upward expander "
        "with the engineers' ballistics, ratio 2-5, lifting the peaks 2-7 dB, and slow "
        "gain rides), then each method's target is reached by the real resolver and the "
        "processed vocal's momentary range is compared with the finished vocal's:",
        "",
        "| method | MAE, LU | MAE by artist, LU | bias, LU |",
        "| --- | ---: | ---: | ---: |",
    ]
    for m in ("rule", "constant", "model"):
        L.append(f"| {names[m]} | {s[m]['mae_lu']:.2f} | {s[m]['mae_by_artist_lu']:.2f} | "
                 f"{s[m]['bias_lu']:+.2f} |")
    L += ["", "Per seed (MAE, LU): " + "; ".join(
        f"seed {r['seed']}: rule {r['rule']:.2f}, constant {r['constant']:.2f}, model "
        f"{r['model']:.2f}" for r in res["per_seed"]) + ".", "",
        f"Lowest error: **{names[best]}**." + (
            " The model's error is below both the rule's and the constant's." if
            s["model"]["mae_lu"] < min(s["rule"]["mae_lu"], s["constant"]["mae_lu"]) else
            " The model's error is **not** below both the rule's and the constant's."),
        "",
        f"The raw-like inputs: momentary range {rs['simulated_median_lu']:.1f} LU at the "
        f"median ({rs['simulated_p10_lu']:.1f} to {rs['simulated_p90_lu']:.1f}); the "
        f"finished vocals {rs['human_median_lu']:.1f} LU"]
    if rs.get("real_raw_n"):
        L[-1] += (f"; {rs['real_raw_n']} real raw karaoke takes (MIR-1K) "
                  f"{rs['real_raw_median_lu']:.1f} LU ({rs['real_raw_p10_lu']:.1f} to "
                  f"{rs['real_raw_p90_lu']:.1f})")
    L[-1] += (". The simulation is this report's weak point: there are no raw takes of "
              "these songs, so how raw a raw take is comes from the engineers' typical "
              "compression, checked only against other singers' raw takes. The model's "
              "lead rests partly on it: the model reads the input's own momentary range "
              "and peak-to-loudness ratio and has learned how this expander maps a "
              "finished vocal to a raw-like one; on real raw takes it is as right as the "
              "expander is realistic. The constant and the rule do not depend on it.")
    L += ["",
          "## A finished vocal fed in",
          "",
          f"The held-out finished vocals themselves through the model ({fin['n']} runs): "
          f"momentary range changed by {fin['mean_abs_change_lu']:.2f} LU on average "
          f"({100 * fin['share_changed_over_1lu']:.0f}% by more than 1 LU); their "
          f"(7 s) LRA by {fin['mean_abs_lra_change_lu']:.2f} LU "
          f"({100 * fin['share_lra_changed_over_1lu']:.0f}% by more than 1 LU). The test "
          "`tests/test_vocal_models.py` feeds the 30 s finished vocal of a MUSDB18 test "
          "song through `--method model` and checks that its LRA stays within 1 LU.",
          ""]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = res["tests"]
    h = np.array([r["human_lu"] for r in t])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, m in zip(axes, ("rule", "constant", "model"), strict=True):
        ax.scatter(h, [r[f"{m}_lu"] for r in t], s=8, alpha=0.6)
        lim = float(max(h.max(), max(r["rule_lu"] for r in t))) * 1.05
        ax.plot([0, lim], [0, lim], "k--", lw=0.8)
        ax.set_title(f"{names[m]}: MAE {s[m]['mae_lu']:.2f} LU", fontsize=9)
        ax.set_xlabel("human mix, momentary range LU")
    axes[0].set_ylabel("processed raw-like vocal, LU")
    fig.tight_layout()
    fig.savefig(out / "dynamics.png", dpi=80)
    plt.close(fig)
    L += ["![processed vs human](dynamics.png)", ""]
    p = out / "dynamics_report.md"
    p.write_text("\n".join(L) + "\n", encoding="utf-8")
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
    cv = res.get("loso")
    if cv and cv["songs"]:
        rows = cv["songs"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, key, label in ((axes[0], "decay_s", "decay, s"),
                               (axes[1], "wet_level_db", "wet level, dB")):
            t = np.array([r["truth"][key] for r in rows])
            for meth, name, mk in (("rule", "baseline rule", "x"), ("constant", "constant", "."),
                                   ("model", "model", "o")):
                ax.scatter(t, [r[meth][key] for r in rows], s=14, marker=mk, alpha=0.7,
                           label=name)
            lo_, hi_ = float(t.min()), float(t.max())
            ax.plot([lo_, hi_], [lo_, hi_], "k--", lw=0.8)
            ax.set_xlabel(f"engineers' choice (estimated), {label}")
            ax.set_ylabel(f"predicted, {label}")
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Reverb chosen by the engineers vs predictions, {cv['protocol']} "
                     f"({len(rows)} songs)", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "reverb_songs.png", dpi=80)
        plt.close(fig)
        made.append("reverb_songs.png")
    return made


def _label_sources(meta: dict) -> str:
    from collections import Counter

    c = Counter(i.get("labels", "?") for i in meta.get("irs", []))
    return ", ".join(f"{v} IRs {k}" for k, v in sorted(c.items())) or "no IRs"


def _write_reverb_report(res: dict, out: str | Path) -> Path:
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
    songs = meta["songs"]
    L += ["## 2. The reverb the engineers chose", "",
          f"The estimator (trained on all {meta['n_examples']} examples) read on the mixed "
          f"vocal stems of **{meta['n_songs']} professionally mixed songs** (MUSDB18's "
          "test songs left out; mean over 8 s excerpts in which the voice sings). These "
          "are estimates with the errors above, not measurements.", ""]
    if songs:
        def pct(key: str) -> str:
            v = np.array([r["choice"][key] for r in songs])
            return " | ".join(f"{x:.2f}" if key in ("decay_s", "hf_ratio") else f"{x:.1f}"
                              for x in np.percentile(v, [10, 50, 90]))

        L += ["| parameter | p10 | median | p90 |", "| --- | ---: | ---: | ---: |",
              f"| decay (T30 at 1 kHz), s | {pct('decay_s')} |",
              f"| damping (4 kHz / 1 kHz) | {pct('hf_ratio')} |",
              f"| pre-delay, ms | {pct('pre_delay_ms')} |",
              f"| wet level (reverberant-to-direct), dB | {pct('wet_level_db')} |", ""]
        tempo = np.array([r["tempo_bpm"] for r in songs])
        dec = np.array([r["choice"]["decay_s"] for r in songs])
        L += [f"Correlation of the (log) decay with the tempo over these songs: "
              f"r = {np.corrcoef(tempo, np.log(dec))[0, 1]:+.2f} (the baseline's rule "
              "assumes a strong negative one).", ""]
        n_faint = sum(1 for r in songs if faint is not None
                      and r["choice"]["wet_level_db"] <= faint)
        if n_faint:
            L += [f"{n_faint} of the {meta['n_songs']} stems read no wetter than a dry take "
                  f"does (at most {faint:+.1f} dB, 3 dB above the 90th percentile of the "
                  "dry clips): for them the estimator cannot tell a faint reverb from none, "
                  "and the decay, damping and pre-delay it reads are in the range where it "
                  "is little better than a constant.", ""]
        L += ["<details><summary>Per song</summary>", "",
              "| song | excerpts | decay, s | 4 kHz ratio | pre-delay, ms | wet, dB | "
              "tempo, BPM |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in songs:
            c = r["choice"]
            L.append(f"| {r['song']} | {r['n_excerpts']} | {c['decay_s']:.2f} | "
                     f"{c['hf_ratio']:.2f} | {c['pre_delay_ms']:.0f} | "
                     f"{c['wet_level_db']:+.1f} | {r['tempo_bpm']:.0f} |")
        L += ["", "</details>", ""]
    held = meta.get("test_split_songs") or []
    if held:
        L += [f"Read but never fitted: {len(held)} of MUSDB18's test songs (the shared "
              "`stems/`):", "", "| song | decay, s | 4 kHz ratio | pre-delay, ms | wet, dB | "
              "tempo, BPM | tempo rule, s |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in held:
            c = r["choice"]
            L.append(f"| {r['song']} | {c['decay_s']:.2f} | {c['hf_ratio']:.2f} | "
                     f"{c['pre_delay_ms']:.0f} | {c['wet_level_db']:+.1f} | "
                     f"{r['tempo_bpm']:.0f} | {r['tempo_rule_decay_s']:.2f} |")
        L += [""]
    if lo:
        n = lo["n_songs"]
        pr = lo.get("prior", {})
        L += ["## 3. Predicting the choice from the backing", "",
              "Ridge regressions on the backing's tempo, onset density and own reverberance, "
              f"intercepts shrunk toward the engineers' own sends ({PRIOR_SONGS:g} song's "
              "worth of the pooled DiffVox presets with a reverb: T60 "
              f"{np.exp(pr.get('log_decay', 0.0)):.2f} s, 4 kHz ratio "
              f"{np.exp(pr.get('log_hf_ratio', 0.0)):.2f}, onset "
              f"{pr.get('pre_delay_ms', 0.0):.1f} ms, level "
              f"{pr.get('wet_level_db', 0.0):+.1f} dB), features clipped to the training "
              f"range; {lo['protocol']}, **{n} songs by {lo['n_artists']} artists**, each "
              "song's predictions averaged over the seeds. Errors against the estimated "
              "choice above:", "",
              "| method | decay, s | decay, abs log ratio | decay, abs log (by artist) | "
              "damping, abs log ratio | pre-delay, ms | wet, dB |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        names = {"model": "model", "rule": "baseline (tempo rule; -14 dB, 20 ms)",
                 "constant": "constant (training songs' mean)"}
        for meth in ("rule", "constant", "model"):
            e = lo["summary"].get(meth)
            if e:
                L.append(f"| {names[meth]} | {e['decay_s']:.2f} | {e['log_decay']:.2f} | "
                         f"{e.get('log_decay_by_artist', float('nan')):.2f} | "
                         f"{e['log_hf_ratio']:.2f} | {e['pre_delay_ms']:.1f} | "
                         f"{e['wet_level_db']:.1f} |")
        if lo.get("sensitivity"):
            L += ["", "The model's error (first seed) as the ridge penalty (alpha, in songs) "
                      "and the prior's weight on the intercepts (in songs) change (shipped: "
                      f"alpha {lo['alpha']:g}, prior {lo['prior_songs']:g}):", "",
                  "| alpha | prior | decay, s | decay, abs log | wet, dB |",
                  "| ---: | ---: | ---: | ---: | ---: |"]
            for r in lo["sensitivity"]:
                e = r["model"]
                L.append(f"| {r['alpha']:g} | {r['prior_songs']:g} | {e['decay_s']:.2f} | "
                         f"{e['log_decay']:.2f} | {e['wet_level_db']:.1f} |")
        sh = max(r["feature_shift"]["log_decay"] for r in lo["songs"])
        L += ["", "The 'truth' here carries the estimator's error (section 1), large for faint "
              "reverbs; the backing features moved the held-out decay predictions by at most "
              f"{sh:.2f} in log decay from the intercept.", ""]
        if "reverb_songs.png" in plots:
            L += ["![per song](reverb_songs.png)", ""]
    p = out / "reverb_report.md"
    p.write_text("\n".join(L) + "\n", encoding="utf-8")
    return p


def _staged(write: Callable[[dict, Path], Path], res: dict, out: str | Path) -> Path:
    """Run a report writer into a scratch folder, then put every file it wrote into
    ``out`` at once (:class:`~vocalmix.core.audio.OutputPlan`: all of them, or, on a
    failure such as a full disk while a plot is saved, none, the previous report kept
    whole); returns the report's path in ``out``. The writers wrote their files straight
    into ``out``, the results first and the report last, so a failure between them left a
    new results file beside an old report."""
    import tempfile

    from vocalmix.core.audio import OutputPlan

    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="vocalmix-report-") as tmp:
        p = write(res, Path(tmp))
        names = sorted(f.name for f in Path(tmp).iterdir() if f.is_file())
        plan = OutputPlan(files=[out / n for n in names], force=True)
        plan.commit({out / n: (Path(tmp) / n).read_bytes() for n in names})
    return out / p.name


def write_level_report(res: dict, out: str | Path) -> Path:
    """The level report (``report.md``, ``results.json``, plots) in ``out``, at once."""
    return _staged(_write_level_report, res, out)


def write_eq_report(res: dict, out: str | Path) -> Path:
    """The EQ report (``eq_report.md``, ``eq_results.json``, plot) in ``out``, at once."""
    return _staged(_write_eq_report, res, out)


def write_dynamics_report(res: dict, out: str | Path) -> Path:
    """The dynamics report (``dynamics_report.md``, results, plot) in ``out``, at once."""
    return _staged(_write_dynamics_report, res, out)


def write_reverb_report(res: dict, out: str | Path) -> Path:
    """The reverb report (``reverb_report.md``, results, plots) in ``out``, at once."""
    return _staged(_write_reverb_report, res, out)


__all__ = [
    "level_report_markdown",
    "write_dynamics_report",
    "write_eq_report",
    "write_level_report",
    "write_reverb_report",
]
