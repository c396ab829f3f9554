"""``thresher report RUN``: PNGs and one self-contained HTML page about a finished run.

What it shows: t-SNE of a sample of kept records coloured by cluster, tier and source;
a histogram of each score with the tier cut-offs drawn; per-rule rejection counts from
the run manifest; dedup counts; a few example records per cluster and per tier.

PNG text stays ASCII unless a CJK font is installed (matplotlib would draw tofu
boxes): clusters are then named ``c<id>`` in plots and the HTML page, which renders
with the browser's fonts, maps each id to its jieba keywords.
"""
from __future__ import annotations

import argparse
import base64
import heapq
import html
import json
import os
from collections import Counter, defaultdict

import numpy as np

from .. import meta as M
from ._common import embed_text

MAX_EXAMPLE_CHARS = 240


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


_CJK_NAMES = ("Noto Sans CJK", "Noto Serif CJK", "WenQuanYi", "Source Han", "SimHei", "Droid Sans Fallback", "AR PL")
_CJK_FILES = ("wqy", "notosanscjk", "notoserifcjk", "sourcehan", "simhei", "droidsansfallback", "uming", "ukai")


def cjk_font() -> str | None:
    """Name of an installed font that has CJK glyphs, if any.

    matplotlib's font list is a cache built on first import, so a font installed later
    (``apt-get install fonts-wqy-microhei``) is missing from it: scan the system font
    folders for known CJK files and register them, instead of rebuilding the whole cache.
    """
    from matplotlib import font_manager
    fm = font_manager.fontManager

    def known() -> str | None:
        return next((f.name for f in fm.ttflist if any(k in f.name for k in _CJK_NAMES)), None)

    name = known()
    if name is None:
        for path in sorted(font_manager.findSystemFonts()):
            if any(k in os.path.basename(path).lower().replace("-", "") for k in _CJK_FILES):
                try:
                    fm.addfont(path)
                except (OSError, RuntimeError, ValueError):  # unreadable/unsupported font file
                    continue
        name = known()
    return name


# --- data -------------------------------------------------------------------------------
class RunData:
    """Everything the report needs, read once from the run folder."""

    def __init__(self, run_dir: str, sample: int = 2000):
        from ..io.readers import iter_records
        from .cluster import sample_key
        from ..rundir import RunDir
        rd = RunDir(run_dir)  # a remote run's results: its local work dir
        self.run_dir = run_dir = rd.root
        self.manifest = _load_json(rd.manifest) or {}
        self.stats = _load_json(rd.stats_json) or {}
        self.tiers = _load_json(rd.tiers_json) or {}
        self.scores: dict[str, list[float]] = defaultdict(list)
        self.sources: Counter = Counter()
        heap: list = []  # the `sample` records with the smallest id hash (deterministic)
        kept_man = rd.sink_manifest("kept")
        self.n = 0
        for r in iter_records(kept_man) if os.path.exists(kept_man) else ():
            self.n += 1
            self.sources[r.source] += 1
            for k, v in M.scores(r).items():
                if isinstance(v, (int, float)):
                    self.scores[k].append(float(v))
            item = (-sample_key(r.id), r.id, r)
            if len(heap) < sample:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
        self.sample = [r for _, _, r in sorted(heap, key=lambda x: x[1])]
        from .cluster import cluster_state_dir
        self.cluster_state = cluster_state_dir(run_dir)
        info = _load_json(os.path.join(self.cluster_state, "clusters.json")) if self.cluster_state else None
        self.clusters = {c["id"]: c for c in (info or {}).get("clusters", [])}


def _load_json(path: str):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --- plots ------------------------------------------------------------------------------
def embed_sample(data: RunData) -> np.ndarray:
    from .embed import build_embedder, load_embedder
    texts = [embed_text(r) for r in data.sample]
    if data.cluster_state and os.path.isdir(os.path.join(data.cluster_state, "embedder")):
        emb = load_embedder(os.path.join(data.cluster_state, "embedder"), cache_dir=None)
    else:
        emb = build_embedder({"backend": "tfidf_svd", "dim": 64}).fit(texts)
    return emb.encode(texts)


def tsne_2d(x: np.ndarray, perplexity: float, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    from ._common import blas_threads
    perplexity = min(perplexity, max(2.0, (len(x) - 1) / 3))
    with blas_threads(1):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", metric="cosine", random_state=seed,
                    max_iter=750).fit_transform(x)


def _scatter(ax, xy: np.ndarray, groups: list[str], title: str, max_legend: int = 20) -> None:
    plt = _plt()
    counts = Counter(groups)
    order = [g for g, _ in counts.most_common()]
    cmap = plt.get_cmap("tab20" if len(order) > 10 else "tab10")
    shown = order[:max_legend]
    for i, g in enumerate(order):
        m = np.array([x == g for x in groups])
        color = cmap(i % cmap.N) if g in shown else (0.75, 0.75, 0.75, 1.0)
        ax.scatter(xy[m, 0], xy[m, 1], s=6, color=color, alpha=0.75, linewidths=0,
                   label=f"{g} ({counts[g]})" if g in shown else None)
    if len(order) > max_legend:
        ax.scatter([], [], s=6, color=(0.75, 0.75, 0.75), label=f"{len(order) - max_legend} more (grey)")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=2.5, frameon=False)


def cluster_name(data: RunData, cid, cjk: bool) -> str:
    if cid is None:
        return "none"
    c = data.clusters.get(int(cid))
    if cjk and c:
        return f"c{cid} {c['label']}"
    return f"c{cid}"


def plot_tsne(data: RunData, xy: np.ndarray, out_dir: str, cjk: bool) -> list[str]:
    plt = _plt()
    views = [("cluster", [cluster_name(data, M.cluster(r), cjk) for r in data.sample]),
             ("tier", [M.tier(r) or "none" for r in data.sample]),
             ("source", [r.source for r in data.sample])]
    paths = []
    for name, groups in views:
        fig, ax = plt.subplots(figsize=(8.5, 6), dpi=110)
        _scatter(ax, xy, groups, f"t-SNE of {len(groups)} kept records, coloured by {name}")
        paths.append(_save(fig, os.path.join(out_dir, f"tsne_{name}.png")))
    return paths


def tier_cutoffs(data: RunData, score: str) -> dict[str, float]:
    """Lowest value of ``score`` in each named tier (the drawn cut-offs)."""
    out = {}
    ruled = {t["name"] for t in (data.tiers.get("spec") or {}).get("tiers", []) if "min" in t or "quantile" in t}
    for tier, st in (data.tiers.get("tiers") or {}).items():
        rng = (st.get("score_ranges") or {}).get(score)
        if rng and tier in ruled:  # a catch-all tier has no cut-off to draw
            out[tier] = rng["min"]
    return out


def plot_scores(data: RunData, out_dir: str) -> list[str]:
    plt = _plt()
    paths = []
    for name in sorted(data.scores):
        vals = np.asarray(data.scores[name])
        fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
        ax.hist(vals, bins=60, color="#4c72b0", alpha=0.85)
        for i, (tier, cut) in enumerate(sorted(tier_cutoffs(data, name).items(), key=lambda kv: kv[1])):
            ax.axvline(cut, color=plt.get_cmap("Set1")(i), linestyle="--", linewidth=1.2, label=f"{tier} >= {cut:.3g}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, frameon=False)
        ax.set_title(f"{name}  (n={len(vals)}, median {np.median(vals):.3g})")
        ax.set_xlabel(name)
        ax.set_ylabel("records")
        paths.append(_save(fig, os.path.join(out_dir, f"score_{name}.png")))
    return paths


def rejection_counts(manifest: dict) -> list[tuple[str, int]]:
    rows = [(f"{stage}:{reason}", n) for stage, s in (manifest.get("stages") or {}).items()
            for reason, n in (s.get("reasons") or {}).items()]
    return sorted(rows, key=lambda x: (-x[1], x[0]))


def dedup_counts(data: RunData) -> dict[str, dict]:
    out = {}
    for red in (data.stats.get("reduces") or {}).values():
        if "dedup" in red.get("stage", ""):
            out[red["stage"]] = {k: v for k, v in red.get("stats", {}).items() if isinstance(v, (int, float))}
    for stage, s in (data.manifest.get("stages") or {}).items():
        if "dedup" in stage:
            out.setdefault(stage, {})["rejected"] = s.get("rejected", 0)
    return out


def plot_bars(rows: list[tuple[str, float]], title: str, path: str, color: str) -> str | None:
    if not rows:
        return None
    plt = _plt()
    rows = rows[:30]
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.2), dpi=110)
    labels, vals = [r[0] for r in rows][::-1], [r[1] for r in rows][::-1]
    ax.barh(labels, vals, color=color)
    for y, v in enumerate(vals):
        ax.text(v, y, f" {v:,}", va="center", fontsize=7)
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _save(fig, path)


def _save(fig, path: str) -> str:
    fig.tight_layout()
    fig.savefig(path)
    _plt().close(fig)
    return path


# --- html -------------------------------------------------------------------------------
def _img(path: str) -> str:
    with open(path, "rb") as f:
        b64 = base64.b64encode(f.read()).decode()
    return f'<img alt="{html.escape(os.path.basename(path))}" src="data:image/png;base64,{b64}">'


def _snippet(r) -> str:
    t = r.full_text(" | ").replace("\n", " ")
    return html.escape(t[:MAX_EXAMPLE_CHARS] + ("…" if len(t) > MAX_EXAMPLE_CHARS else ""))


def _examples(data: RunData, key, names: dict, per: int) -> str:
    groups: dict = defaultdict(list)
    for r in data.sample:
        groups[key(r)].append(r)
    rows = []
    for g in sorted(groups, key=lambda g: (-len(groups[g]), str(g))):
        ex = "".join(f"<li><code>{html.escape(r.source)}</code> {_snippet(r)}</li>" for r in groups[g][:per])
        rows.append(f"<tr><td><b>{html.escape(str(names.get(g, g)))}</b><br><small>{len(groups[g])} in sample"
                    f"</small></td><td><ul>{ex}</ul></td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def render_html(data: RunData, images: dict[str, list[str]], per: int) -> str:
    c = data.manifest.get("counts", {})
    head = (f"<p>{c.get('in', 0):,} records in, {c.get('kept', 0):,} kept, {c.get('rejected', 0):,} rejected, "
            f"{c.get('quarantined', 0):,} quarantined. Sample for plots/examples: {len(data.sample):,}.</p>")
    clusters = "".join(f"<tr><td>c{cid}</td><td>{html.escape(cl['label'])}</td><td>{html.escape(' '.join(cl['keywords']))}"
                       f"</td><td>{cl['sample_size']}</td></tr>" for cid, cl in sorted(data.clusters.items()))
    tiers = "".join(f"<tr><td>{html.escape(t)}</td><td>{s['records']:,}</td><td>{s['tokens_est']:,}</td>"
                    f"<td>{html.escape(json.dumps(s['score_ranges']))}</td></tr>"
                    for t, s in (data.tiers.get("tiers") or {}).items())
    dd = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(json.dumps(v))}</td></tr>"
                 for k, v in dedup_counts(data).items())
    sections = [f"<h1>thresher report: {html.escape(data.manifest.get('name', os.path.basename(data.run_dir)))}</h1>",
                head]
    for title, key in (("t-SNE", "tsne"), ("Scores and tier cut-offs", "scores"), ("Rejections", "reject"),
                       ("Dedup", "dedup")):
        if images.get(key):
            sections.append(f"<h2>{title}</h2>" + "".join(_img(p) for p in images[key]))
    if dd:
        sections.append(f"<table><tr><th>dedup stage</th><th>counts</th></tr>{dd}</table>")
    if clusters:
        sections.append("<h2>Clusters</h2><table><tr><th>id</th><th>label</th><th>keywords (jieba c-TF-IDF)</th>"
                        f"<th>fit sample</th></tr>{clusters}</table>")
    if tiers:
        sections.append("<h2>Tiers</h2><table><tr><th>tier</th><th>records</th><th>tokens</th><th>score ranges"
                        f"</th></tr>{tiers}</table>")
    names = {cid: f"c{cid} {cl['label']}" for cid, cl in data.clusters.items()}
    if data.clusters:
        sections.append("<h2>Examples per cluster</h2>" + _examples(data, lambda r: M.cluster(r), names, per))
    sections.append("<h2>Examples per tier</h2>" + _examples(data, lambda r: M.tier(r) or "none", {}, per))
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}img{max-width:100%;"
             "display:block;margin:.5em 0}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
             "padding:4px 6px;vertical-align:top;font-size:13px}ul{margin:0;padding-left:1.2em}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>thresher report</title><style>{style}"
            f"</style></head><body>{''.join(sections)}</body></html>")


def build_report(run_dir: str, out_dir: str | None = None, sample: int = 2000, perplexity: float = 30.0,
                 examples: int = 3, seed: int = 0) -> dict:
    from ..rundir import RunDir
    rd = RunDir(run_dir)
    out_dir = out_dir or rd.report
    os.makedirs(out_dir, exist_ok=True)
    if not os.path.exists(rd.manifest):
        raise FileNotFoundError(f"{run_dir}: no manifest.json (is this a finished thresher run?)")
    data = RunData(run_dir, sample)
    cjk = cjk_font()
    if cjk:
        import matplotlib
        matplotlib.rcParams["font.sans-serif"] = [cjk, "DejaVu Sans"]
    images: dict[str, list[str]] = {"tsne": [], "scores": [], "reject": [], "dedup": []}
    if len(data.sample) >= 10:
        images["tsne"] = plot_tsne(data, tsne_2d(embed_sample(data), perplexity, seed), out_dir, bool(cjk))
    images["scores"] = plot_scores(data, out_dir)
    p = plot_bars(rejection_counts(data.manifest), "rejections per stage:reason", os.path.join(out_dir, "rejections.png"),
                  "#c44e52")
    images["reject"] = [p] if p else []
    dd = [(f"{k}:{m}", v) for k, s in dedup_counts(data).items() for m, v in s.items()
          if m in ("rejected", "clusters", "dropped", "edges")]
    p = plot_bars(dd, "dedup counts", os.path.join(out_dir, "dedup.png"), "#55a868")
    images["dedup"] = [p] if p else []
    page = render_html(data, images, examples)
    index = os.path.join(out_dir, "index.html")
    from ..io.atomic import atomic_write_text
    atomic_write_text(index, page)
    return {"html": index, "pngs": [p for v in images.values() for p in v], "sample": len(data.sample),
            "kept": data.n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="thresher report", description="plots + HTML report of a finished run")
    ap.add_argument("run", help="run directory (holds manifest.json)")
    ap.add_argument("--out", help="output folder (default RUN/report)")
    ap.add_argument("--sample", type=int, default=2000, help="records in the t-SNE and example sample")
    ap.add_argument("--perplexity", type=float, default=30.0)
    ap.add_argument("--examples", type=int, default=3, help="example records per cluster and per tier")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        res = build_report(a.run, a.out, a.sample, a.perplexity, a.examples, a.seed)
    except FileNotFoundError as e:
        print(f"error: {e}")
        return 2
    print(f"report: {res['html']} ({len(res['pngs'])} PNGs, {res['sample']} sampled of {res['kept']} kept)")
    return 0
