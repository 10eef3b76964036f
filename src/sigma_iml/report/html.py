"""One self-contained HTML page for a run: inline CSS and script, no network resources.

Tables are rendered here, in Python. The gallery is an inline JSON document (one short
array per item, no per-item paths) that the page's script filters, sorts and renders one
page at a time; images are relative links to thumbnails in the run folder, loaded lazily,
so 10,000 pairs stay responsive.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .runs import ReportData

_CSS = """
:root { --fg: #1d2430; --muted: #5c6675; --line: #d9dee5; --bg: #f6f7f9; --accent: #2458b3; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; padding: 0 24px 48px; }
h1 { font-size: 22px; margin: 20px 0 6px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.facts { display: flex; flex-wrap: wrap; gap: 6px 18px; color: var(--muted); margin: 0; padding: 0; list-style: none; }
.facts b { color: var(--fg); font-weight: 600; }
.note { color: var(--muted); font-style: italic; margin: 6px 0; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 4px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #eef1f5; font-weight: 600; text-align: center; }
td.name, th.name { text-align: left; }
td.best { font-weight: 700; }
caption { caption-side: bottom; text-align: left; color: var(--muted); font-size: 12px; padding-top: 4px; }
img.plot { max-width: 100%; background: #fff; border: 1px solid var(--line); }
.controls { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center; background: #fff;
            border: 1px solid var(--line); padding: 8px 10px; position: sticky; top: 0; z-index: 2; }
.controls label { color: var(--muted); display: flex; gap: 4px; align-items: center; }
.controls input[type=number] { width: 80px; }
.controls input[type=search] { width: 160px; }
button { cursor: pointer; }
.pager { display: flex; gap: 8px; align-items: center; margin: 10px 0; }
#gallery { display: flex; flex-direction: column; gap: 10px; }
.card { background: #fff; border: 1px solid var(--line); padding: 8px 10px; }
.card-head { display: flex; flex-wrap: wrap; gap: 4px 16px; align-items: baseline; margin-bottom: 6px; }
.item-id { font-family: ui-monospace, Menlo, Consolas, monospace; font-weight: 600; }
.scores { color: var(--fg); }
.status-failed { color: #b3261e; font-weight: 600; }
.images { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; text-align: center; }
figure img { display: block; width: 160px; height: auto; min-height: 40px; background: #eceff3;
             image-rendering: auto; border: 1px solid var(--line); }
figcaption { font-size: 11px; color: var(--muted); max-width: 160px; overflow-wrap: anywhere; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 10px; vertical-align: middle; }
"""

# The gallery script. Plain ES5 (no template literals, no modules) so the page works from
# file:// in any browser; data is inserted as text nodes, never as HTML.
_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("gallery-data").textContent);
  var byId = function (id) { return document.getElementById(id); };
  var state = { dataset: 0, method: 0, key: data.scores.length ? "0" : "id", descending: true,
                min: null, max: null, status: "all", search: "", page: 0, pageSize: 50 };

  function addOption(select, value, text) {
    var option = document.createElement("option");
    option.value = value; option.textContent = text; select.appendChild(option);
  }
  data.datasets.forEach(function (d, i) { addOption(byId("dataset"), String(i), d.name); });
  data.methods.forEach(function (m, i) { addOption(byId("method"), String(i), m.label); });
  data.scores.forEach(function (s, i) { addOption(byId("sort-key"), String(i), s); });
  addOption(byId("sort-key"), "id", "id");
  byId("sort-key").value = state.key;
  if (data.datasets.length < 2) { byId("dataset-control").hidden = true; }
  if (data.methods.length < 2) { byId("method-control").hidden = true; }
  var statuses = {};
  data.items.forEach(function (item) { statuses[item[3]] = true; });
  if (Object.keys(statuses).length < 2) { byId("status-control").hidden = true; }

  function isPercent(index) { return data.percent[index]; }
  function scoreOf(item, index) {
    var scores = item[5][state.method];
    var value = scores ? scores[index] : null;
    return value === undefined ? null : value;
  }
  function show(value, index) {
    if (value === null) { return "\u2013"; }
    return isPercent(index) ? (100 * value).toFixed(2) : value.toFixed(4);
  }
  function readBound(id, index) {
    var text = byId(id).value;
    if (text === "" || index === null) { return null; }
    var value = Number(text);
    if (!isFinite(value)) { return null; }
    return isPercent(index) ? value / 100 : value;
  }

  function selection() {
    var index = state.key === "id" ? null : Number(state.key);
    var min = readBound("min-score", index), max = readBound("max-score", index);
    var search = state.search.toLowerCase();
    var kept = [];
    for (var i = 0; i < data.items.length; i++) {
      var item = data.items[i];
      if (item[0] !== state.dataset) { continue; }
      if (state.status !== "all" && item[3] !== state.status) { continue; }
      if (search && item[1].toLowerCase().indexOf(search) < 0) { continue; }
      if (index !== null && (min !== null || max !== null)) {
        var v = scoreOf(item, index);
        if (v === null || (min !== null && v < min) || (max !== null && v > max)) { continue; }
      }
      kept.push(item);
    }
    var sign = state.descending ? -1 : 1;
    kept.sort(function (a, b) {
      if (index !== null) {
        var x = scoreOf(a, index), y = scoreOf(b, index);
        if (x === null && y !== null) { return 1; }   // items without a score go last
        if (y === null && x !== null) { return -1; }
        if (x !== y && x !== null) { return sign * (x < y ? -1 : 1); }
        return a[1] < b[1] ? -1 : (a[1] > b[1] ? 1 : 0);
      }
      return sign * (a[1] < b[1] ? -1 : (a[1] > b[1] ? 1 : 0));
    });
    return kept;
  }

  function fill(template, item, method, mapName) {
    return data.base + template.replace("{d}", data.datasets[item[0]].key)
      .replace("{m}", method ? method.key : "").replace("{s}", item[2])
      .replace("{map}", mapName || "");
  }
  function figure(src, label) {
    var fig = document.createElement("figure");
    var link = document.createElement("a");
    link.href = src; link.target = "_blank"; link.rel = "noopener";
    var img = document.createElement("img");
    img.loading = "lazy"; img.decoding = "async"; img.src = src; img.alt = label;
    link.appendChild(img); fig.appendChild(link);
    var caption = document.createElement("figcaption");
    caption.textContent = label; fig.appendChild(caption);
    return fig;
  }

  function card(item) {
    var method = data.methods[state.method];
    var box = document.createElement("div");
    box.className = "card"; box.setAttribute("data-id", item[1]);
    var head = document.createElement("div"); head.className = "card-head";
    var id = document.createElement("span"); id.className = "item-id"; id.textContent = item[1];
    head.appendChild(id);
    var scores = document.createElement("span"); scores.className = "scores";
    scores.textContent = data.scores.map(function (name, i) {
      return name + " " + show(scoreOf(item, i), i);
    }).join(" \u00b7 ");
    head.appendChild(scores);
    if (item[3] !== "ok") {
      var status = document.createElement("span");
      status.className = "status-" + item[3]; status.textContent = item[3];
      head.appendChild(status);
    }
    box.appendChild(head);
    if (item[4]) {
      var images = document.createElement("div"); images.className = "images";
      data.pair_images.forEach(function (spec) { images.appendChild(figure(fill(spec.tpl, item, method), spec.label)); });
      data.method_images.forEach(function (spec) { images.appendChild(figure(fill(spec.tpl, item, method), spec.label)); });
      var maps = (method.maps || {})[data.datasets[item[0]].key] || [];
      if (data.map_tpl) {
        maps.forEach(function (name) { images.appendChild(figure(fill(data.map_tpl, item, method, name), name)); });
      }
      box.appendChild(images);
    }
    if (item[6]) {
      var note = document.createElement("div"); note.className = "note"; note.textContent = item[6];
      box.appendChild(note);
    }
    return box;
  }

  function render() {
    var kept = selection();
    var pages = Math.max(1, Math.ceil(kept.length / state.pageSize));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * state.pageSize;
    var gallery = byId("gallery");
    while (gallery.firstChild) { gallery.removeChild(gallery.firstChild); }
    var fragment = document.createDocumentFragment();
    kept.slice(start, start + state.pageSize).forEach(function (item) { fragment.appendChild(card(item)); });
    gallery.appendChild(fragment);
    var text = kept.length ? ("page " + (state.page + 1) + " of " + pages + " \u00b7 " + kept.length + " pairs")
                           : "no pair matches";
    ["page-info", "page-info-bottom"].forEach(function (id) { byId(id).textContent = text; });
    ["prev", "prev-bottom"].forEach(function (id) { byId(id).disabled = state.page === 0; });
    ["next", "next-bottom"].forEach(function (id) { byId(id).disabled = state.page >= pages - 1; });
    byId("sort-direction").textContent = state.descending ? "descending \u2193" : "ascending \u2191";
    byId("sort-direction").setAttribute("data-descending", state.descending ? "1" : "0");
  }

  function changed(reset) { if (reset) { state.page = 0; } render(); }
  byId("dataset").addEventListener("change", function (e) { state.dataset = Number(e.target.value); changed(true); });
  byId("method").addEventListener("change", function (e) { state.method = Number(e.target.value); changed(true); });
  byId("sort-key").addEventListener("change", function (e) { state.key = e.target.value; changed(true); });
  byId("sort-direction").addEventListener("click", function () { state.descending = !state.descending; changed(true); });
  byId("status").addEventListener("change", function (e) { state.status = e.target.value; changed(true); });
  byId("search").addEventListener("input", function (e) { state.search = e.target.value; changed(true); });
  byId("min-score").addEventListener("input", function () { changed(true); });
  byId("max-score").addEventListener("input", function () { changed(true); });
  byId("page-size").addEventListener("change", function (e) { state.pageSize = Number(e.target.value); changed(true); });
  function step(delta) { return function () { state.page += delta; render(); window.scrollTo(0, byId("gallery-section").offsetTop); }; }
  ["prev", "prev-bottom"].forEach(function (id) { byId(id).addEventListener("click", step(-1)); });
  ["next", "next-bottom"].forEach(function (id) { byId(id).addEventListener("click", step(1)); });
  render();
})();
"""


def _cell(value: Any, best: bool = False) -> str:
    text = (
        "–"
        if value is None
        else (f"{value:.2f}" if isinstance(value, float) else escape(str(value)))
    )
    return f'<td class="best">{text}</td>' if best else f"<td>{text}</td>"


def _best(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if len(present) > 1 else None


def _table1(results: dict[str, Any], micro: bool) -> str:
    """Table 1's layout: methods as rows, a column group (F1, IOU) per dataset, Average."""
    names = [d["name"] for d in results.get("datasets", [])]
    rows = results.get("table", [])
    f1, iou = ("f1_micro", "iou_micro") if micro else ("f1", "iou")
    groups = [*names, "Average"]
    head = "<tr><th class='name' rowspan='2'>Method</th>" + "".join(
        f"<th colspan='2'>{escape(n)}</th>" for n in groups
    )
    label = ("F1 µ", "IOU µ") if micro else ("F1", "IOU")
    head += "</tr><tr>" + f"<th>{label[0]}</th><th>{label[1]}</th>" * len(groups) + "</tr>"

    def column(group: str, metric: str) -> list[float | None]:
        if group == "Average":
            return [r["average"].get(metric) for r in rows]
        return [r["datasets"].get(group, {}).get(metric) for r in rows]

    best = {(g, m): _best(column(g, m)) for g in groups for m in (f1, iou)}
    body = []
    for index, row in enumerate(rows):
        cells = [
            f"<td class='name' title='{escape(row.get('spec', ''))}'>{escape(row['method'])}</td>"
        ]
        for group in groups:
            for metric in (f1, iou):
                value = column(group, metric)[index]
                cells.append(_cell(value, value is not None and value == best[(group, metric)]))
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = (
        "Micro: pixel counts summed over each dataset, then one score. "
        if micro
        else "Per-image F1 / IoU (IMDL-BenCo), averaged over images, in %. "
    ) + "Average: mean over the datasets. Bold: best in its column."
    return (
        f"<div class='table-wrap'><table id='{'micro' if micro else 'results'}-table'>"
        f"<thead>{head}</thead><tbody>{''.join(body)}</tbody><caption>{caption}</caption></table></div>"
    )


def _paper_table(results: dict[str, Any]) -> str:
    names = [d["name"] for d in results.get("datasets", [])]
    rows = []
    for paper in results.get("paper", []):
        cells = [f"<td class='name'>{escape(paper['label'])}</td>"]
        for name in names:
            pair = paper.get("scores", {}).get(name)
            cells += [_cell(pair[0]), _cell(pair[1])] if pair else [_cell(None), _cell(None)]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "<tr><th class='name' rowspan='2'>Method (paper)</th>" + "".join(
        f"<th colspan='2'>{escape(n)}</th>" for n in names
    )
    head += "</tr><tr>" + "<th>F1</th><th>IOU</th>" * len(names) + "</tr>"
    return (
        "<div class='table-wrap'><table id='paper-table'><thead>"
        + head
        + "</thead><tbody>"
        + "".join(rows)
        + "</tbody><caption>As printed in the paper (Table 1), in %.</caption></table></div>"
    )


def _robustness_tables(data: dict[str, Any]) -> str:
    parts = [f"<p class='note'>Levels: {escape(str(data.get('levels_source', '')))}</p>"]
    for dataset in data.get("datasets", []):
        target = "both images" if dataset.get("target") == "both" else "the edited image only"
        parts.append(
            f"<h3>{escape(dataset['dataset'])} — perturbed: {target}; F1 (per-image mean, %)</h3>"
        )
        for panel in dataset.get("panels", []):
            levels = panel.get("levels", [])
            head = (
                "<tr><th class='name'>"
                + escape(panel["title"])
                + "</th><th>clean</th>"
                + "".join(f"<th>{escape(str(v))}</th>" for v in levels)
                + "</tr>"
            )
            rows = []
            for series in panel.get("series", []):
                values = [series.get("clean", {}).get("f1"), *series.get("f1", [])]
                cells = "".join(_cell(None if v is None else 100 * v) for v in values)
                rows.append(f"<tr><td class='name'>{escape(series['method'])}</td>{cells}</tr>")
            parts.append(
                "<div class='table-wrap'><table class='robustness'><thead>"
                + head
                + "</thead><tbody>"
                + "".join(rows)
                + f"</tbody><caption>x: {escape(panel['x_label'])}</caption></table></div>"
            )
    return "".join(parts)


def _evaluation_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "<tr>"
        + "".join(
            f"<th>{h}</th>"
            for h in ("dataset", "method", "n", "F1", "IoU", "F1 µ", "IoU µ", "failed")
        )
        + "</tr>"
    )

    def pct(value: Any) -> float | None:
        return None if value is None else 100.0 * float(value)

    body = "".join(
        "<tr>"
        + f"<td class='name'>{escape(str(r.get('dataset', '')))}</td>"
        + f"<td class='name'>{escape(str(r.get('method_spec') or r.get('method', '')))}</td>"
        + _cell(r.get("n"))
        + "".join(_cell(pct(r.get(k))) for k in ("f1", "iou", "f1_micro", "iou_micro"))
        + _cell(r.get("n_failed"))
        + "</tr>"
        for r in rows
    )
    return (
        f"<div class='table-wrap'><table id='results-table'><thead>{head}</thead><tbody>{body}</tbody>"
        f"<caption>In %. F1, IoU: per-image mean; µ: micro.</caption></table></div>"
    )


def _gallery_section(gallery: dict[str, Any], base: str) -> str:
    data = dict(gallery)
    data["base"] = base
    data["percent"] = [name in ("F1", "IoU") for name in gallery["scores"]]
    # "</" would end the script element early; \u003c is the same character to JSON.
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    legend = ""
    if gallery["method_images"] or gallery["kind"] == "annotation":
        legend = (
            "<p class='legend note'>Overlay:<span style='background:rgb(40,200,70)'></span>correct"
            "<span style='background:rgb(235,50,50)'></span>predicted, not edited"
            "<span style='background:rgb(40,120,255)'></span>edited, missed</p>"
        )
    pager = (
        "<div class='pager'><button id='prev{0}' type='button'>‹ previous</button>"
        "<span id='page-info{0}'></span><button id='next{0}' type='button'>next ›</button></div>"
    )
    return f"""
<section id="gallery-section">
<h2>Pairs</h2>
{legend}
<div class="controls">
  <label id="dataset-control">dataset <select id="dataset"></select></label>
  <label id="method-control">method <select id="method"></select></label>
  <label>sort by <select id="sort-key"></select></label>
  <button id="sort-direction" type="button"></button>
  <label>score from <input id="min-score" type="number" step="any"></label>
  <label>to <input id="max-score" type="number" step="any"></label>
  <label id="status-control">status <select id="status"><option value="all">all</option>
    <option value="ok">ok</option><option value="failed">failed</option></select></label>
  <label>id <input id="search" type="search" placeholder="contains…"></label>
  <label>per page <select id="page-size"><option>25</option><option selected>50</option>
    <option>100</option><option>200</option></select></label>
</div>
{pager.format("")}
<div id="gallery"></div>
{pager.format("-bottom")}
</section>
<script id="gallery-data" type="application/json">{payload}</script>
<script>{_SCRIPT}</script>
"""


def render_html(report: ReportData, base: str = "") -> str:
    """The page for ``report``; ``base`` is the run folder relative to the page ("" when
    the page is written inside the run folder)."""
    parts = [f"<h1>{escape(report.title)}</h1>"]
    if report.facts:
        parts.append(
            "<ul class='facts'>"
            + "".join(f"<li>{escape(k)}: <b>{escape(v)}</b></li>" for k, v in report.facts)
            + "</ul>"
        )
    for note in report.notes:
        parts.append(f"<p class='note'>{escape(note)}</p>")
    if report.kind == "benchmark" and report.results is not None:
        parts.append("<h2>Results</h2>")
        parts.append(_table1(report.results, micro=False))
        parts.append("<h3>Micro</h3>" + _table1(report.results, micro=True))
        if report.results.get("paper"):
            parts.append("<h3>The paper's numbers</h3>" + _paper_table(report.results))
        failures = report.results.get("failures") or {}
        if failures:
            items = "".join(
                f"<li>{escape(k)}: {len(v)} pair(s) skipped, e.g. {escape(v[0].get('error', ''))}</li>"
                for k, v in failures.items()
                if v
            )
            parts.append(f"<h3>Skipped pairs</h3><ul>{items}</ul>")
    if report.kind == "evaluation":
        parts.append("<h2>Results</h2>" + _evaluation_table(report.evaluation_rows))
    if report.kind == "annotation" and report.summary:
        scores = report.summary.get("scores")
        if isinstance(scores, dict) and scores.get("f1") is not None:
            parts.append(
                "<h2>Against ground truth</h2>"
                + _evaluation_table(
                    [
                        {
                            **scores,
                            "dataset": report.run_dir.name,
                            "method": report.summary.get("method", ""),
                            "n_failed": report.summary.get("total_failed"),
                        }
                    ]
                )
            )
    if report.faithfulness is not None:
        from .faithfulness import summary_html

        parts.append(summary_html(report.faithfulness))
    if report.robustness is not None:
        parts.append("<h2>Robustness to post-processing</h2>")
        if report.robustness_png:
            parts.append(
                f"<img class='plot' id='robustness-plot' src='{escape(base + report.robustness_png)}' "
                "alt='F1 against perturbation level, one panel per perturbation'>"
            )
        parts.append(_robustness_tables(report.robustness))
    if report.gallery is not None and report.gallery["items"]:
        parts.append(_gallery_section(report.gallery, base))
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # An empty icon: otherwise the browser asks the server for /favicon.ico.
        "<link rel='icon' href='data:,'>"
        f"<title>{escape(report.title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


def relative_base(run_dir: Path, page: Path) -> str:
    """The run folder as seen from ``page``'s folder, as a URL prefix ("" or "x/../")."""
    relative = os.path.relpath(run_dir.resolve(), page.resolve().parent)
    if relative == ".":
        return ""
    return "/".join(quote(part) for part in Path(relative).parts) + "/"
