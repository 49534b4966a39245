"""Render reports/report.md and a self-contained reports/report.html (figures embedded)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annlab.config.schema import Config
from annlab.reporting.compare import run_settings


@dataclass
class ReportData:
    cfg: Config
    meta: dict[str, Any]
    metrics: dict[str, float]
    details: dict[str, Any]
    figures: dict[str, Path]  # title -> PNG path
    summary: str
    run_id: str | None
    tracking_uri: str | None
    comparison: list[dict[str, Any]] = field(default_factory=list)
    first_rows: list[dict[str, Any]] = field(default_factory=list)


def config_summary(cfg: Config) -> list[tuple[str, str]]:
    m, o, t = cfg.model, cfg.optimizer, cfg.training
    return [
        ("experiment", cfg.experiment_name),
        ("data set", f"{cfg.dataset.name} (split {cfg.split.strategy}, scaling {cfg.split.scaling})"),
        ("model", f"{m.name}: n_hidden={m.n_hidden}, n_neurons={m.n_neurons}, activation={m.activation}"),
        ("optimizer", f"{o.name}, learning_rate={o.learning_rate}"),
        ("training", f"epochs={t.epochs}, batch_size={t.batch_size}, seed={cfg.seed}"),
    ]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_markdown(data: ReportData, figures_rel: dict[str, str]) -> str:
    out = [f"# {data.cfg.experiment_name}: training report", ""]
    if data.run_id:
        out += [f"MLflow run `{data.run_id}` in `{data.tracking_uri}` (open with `annlab ui`).", ""]
    out += ["## Configuration", "", "| setting | value |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in config_summary(data.cfg)]
    out += ["", "## Test metrics", "", "| metric | value |", "|---|---|"]
    out += [f"| {k} | {_fmt(v)} |" for k, v in data.metrics.items()]
    for title, rel in figures_rel.items():
        out += ["", f"## {title}", "", f"![{title}]({rel})"]
    if data.first_rows:
        out += ["", "## First test instances", "", "| actual | prediction |", "|---|---|"]
        for row in data.first_rows:
            out.append(f"| {row['actual']} | {row['prediction']} |")
    if data.comparison:
        out += [
            "",
            f"## Runs of `{data.cfg.experiment_name}` (best first by {data.cfg.objective.metric})",
            "",
            "| run | settings | objective | test metrics |",
            "|---|---|---|---|",
        ]
        for row, settings in zip(data.comparison, run_settings(data.comparison), strict=True):
            marker = " (this run)" if row["run_id"] == data.run_id else ""
            tests = ", ".join(f"{k}={_fmt(v)}" for k, v in list(row["metrics"].items())[:3])
            cells = [f"`runs:/{row['run_id']}`{marker}", _md_cell(settings), _fmt(row["objective"]), tests]
            out.append(f"| {' | '.join(cells)} |")
    out += ["", "## Model summary", "", "```", data.summary.rstrip(), "```", ""]
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _img(path: Path) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return f"data:image/png;base64,{encoded}"


def render_html(data: ReportData) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{e(data.cfg.experiment_name)} report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}"
        "tr.wrong td{color:#b00}tr.best td{font-weight:bold}pre{background:#f7f7f7;padding:1em;"
        "overflow-x:auto}</style></head><body>",
        f"<h1>{e(data.cfg.experiment_name)}: training report</h1>",
    ]
    if data.run_id:
        parts.append(
            f"<p>MLflow run <code>{e(data.run_id)}</code> in <code>{e(str(data.tracking_uri))}</code></p>"
        )
    parts.append("<h2>Configuration</h2><table>")
    parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in config_summary(data.cfg)]
    parts.append("</table><h2>Test metrics</h2><table id='metrics'><tr><th>metric</th><th>value</th></tr>")
    parts += [f"<tr><td>{e(k)}</td><td>{e(_fmt(v))}</td></tr>" for k, v in data.metrics.items()]
    parts.append("</table>")
    for title, path in data.figures.items():
        parts.append(f"<h2>{e(title)}</h2><img alt='{e(title)}' src='{_img(path)}'>")
    if data.first_rows:
        parts.append("<h2>First test instances</h2><table><tr><th>actual</th><th>prediction</th></tr>")
        for row in data.first_rows:
            cls = " class='wrong'" if row.get("wrong") else ""
            parts.append(
                f"<tr{cls}><td>{e(str(row['actual']))}</td><td>{e(str(row['prediction']))}</td></tr>"
            )
        parts.append("</table>")
    if data.comparison:
        parts.append(
            f"<h2>Runs of {e(data.cfg.experiment_name)} (best first by "
            f"{e(data.cfg.objective.metric)})</h2><table id='runs'><tr><th>run</th>"
            "<th>settings</th><th>objective</th><th>test metrics</th></tr>"
        )
        for row, settings in zip(data.comparison, run_settings(data.comparison), strict=True):
            cls = " class='best'" if row["run_id"] == data.run_id else ""
            tests = ", ".join(f"{k}={_fmt(v)}" for k, v in list(row["metrics"].items())[:3])
            parts.append(
                f"<tr{cls}><td><code>runs:/{e(row['run_id'])}</code></td><td>{e(settings)}</td>"
                f"<td>{e(_fmt(row['objective']))}</td><td>{e(tests)}</td></tr>"
            )
        parts.append("</table>")
    parts.append(f"<h2>Model summary</h2><pre>{e(data.summary)}</pre></body></html>")
    return "\n".join(parts)
