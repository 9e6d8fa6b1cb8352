"""The report of a chaos or soak run: markdown tables (accounting, faults, error and close
codes, hostile frames, memory) written between this mode's markers in docs/reliability.md,
and the memory-over-time plot as a self-made SVG (no plotting library needed)."""

from __future__ import annotations

import html
import statistics
from pathlib import Path
from typing import Any

Result = dict[str, Any]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]
FAULT_COLOURS = {
    "gateway-kill": "#d62728",
    "redis-pause": "#ff7f0e",
    "redis-kill": "#9467bd",
    "postgres-restart": "#1f77b4",
    "hostile": "#7f7f7f",
}


def table(header: list[str], rows: list[list[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.1f}"
        return f"{value:,}" if isinstance(value, int) else str(value)

    lines = [header, ["---"] * len(header), *[[cell(v) for v in row] for row in rows]]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def counts(counter: dict[str, int], empty: str = "none") -> str:
    if not counter:
        return empty
    return ", ".join(f"`{k}` {v:,}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))


# --- memory --------------------------------------------------------------------------------


def memory_summary(samples: list[Result], warmup: float) -> list[list[object]]:
    """Per process: MiB after the warm-up, at the end, the peak, and the growth per hour of a
    least-squares line through the samples after the warm-up."""
    names = sorted({name for s in samples for name in s["kib"]})
    rows: list[list[object]] = []
    for name in names:
        points = [(s["at"], s["kib"][name]) for s in samples if name in s["kib"]]
        steady = [p for p in points if p[0] >= warmup] or points
        if len(steady) < 2:
            continue
        window = max(1, len(steady) // 10)
        start = statistics.median(v for _, v in steady[:window]) / 1024
        end = statistics.median(v for _, v in steady[-window:]) / 1024
        peak = max(v for _, v in points) / 1024
        slope = _slope(steady) * 3600 / 1024  # KiB/s -> MiB/h
        rows.append([name, start, end, peak, f"{end - start:+.1f}", f"{slope:+.1f}"])
    return rows


def _slope(points: list[tuple[float, int]]) -> float:
    xs = [p[0] for p in points]
    ys = [float(p[1]) for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return float(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var)


def svg_plot(result: Result, title: str) -> str:
    """RSS per process over the run (MiB against minutes), faults as shaded bands."""
    samples: list[Result] = result["memory"]
    width, height, left, right, top, bottom = 860, 400, 60, 170, 36, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    names = sorted({name for s in samples for name in s["kib"]})
    t_max = max([float(s["at"]) for s in samples] + [1.0]) / 60
    y_max = max([float(v) for s in samples for v in s["kib"].values()] + [1024.0]) / 1024 * 1.1
    y_step = _nice_step(y_max / 6)
    y_max = (int(y_max / y_step) + 1) * y_step
    t_step = _nice_step(t_max / 8)

    def x(minutes: float) -> float:
        return left + plot_w * minutes / t_max

    def y(mib: float) -> float:
        return top + plot_h * (1 - mib / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for fault in result.get("faults", []):
        x0, x1 = x(fault["at"] / 60), x(max(fault["until"], fault["at"] + 1) / 60)
        colour = FAULT_COLOURS.get(fault["kind"], "#7f7f7f")
        out.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1.5):.1f}" height="{plot_h}"'
            f' fill="{colour}" opacity="0.18"><title>{html.escape(fault["kind"])}</title></rect>'
        )
    tick = 0.0
    while tick <= y_max + 1e-9:
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"'
            ' stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
        tick += y_step
    tick = 0.0
    while tick <= t_max + 1e-9:
        out.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top + plot_h}"'
            f' y2="{top + plot_h + 4}" stroke="#333"/>'
            f'<text x="{x(tick):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{tick:g}</text>'
        )
        tick += t_step
    out.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none"'
        ' stroke="#333"/>'
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">minutes</text>'
        f'<text x="16" y="{top + plot_h / 2}" text-anchor="middle"'
        f' transform="rotate(-90 16 {top + plot_h / 2})">RSS, MiB</text>'
    )
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        segments: list[list[str]] = [[]]
        last_at = None
        for s in samples:
            if name not in s["kib"]:
                segments.append([])  # not running at that moment: break the line
                continue
            if last_at is not None and s["at"] - last_at > 3 * result["sample_every"]:
                segments.append([])
            segments[-1].append(f"{x(s['at'] / 60):.1f},{y(s['kib'][name] / 1024):.1f}")
            last_at = s["at"]
        for points in segments:
            if len(points) > 1:
                out.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="1.6"'
                    f' points="{" ".join(points)}"/>'
                )
        ly = top + 14 + 18 * i
        out.append(
            f'<line x1="{left + plot_w + 12}" x2="{left + plot_w + 32}" y1="{ly - 4}"'
            f' y2="{ly - 4}" stroke="{colour}" stroke-width="3"/>'
            f'<text x="{left + plot_w + 38}" y="{ly}">{html.escape(name)}</text>'
        )
    kinds = sorted({f["kind"] for f in result.get("faults", [])})
    for j, kind in enumerate(kinds):
        ly = top + 14 + 18 * (len(names) + 1 + j)
        out.append(
            f'<rect x="{left + plot_w + 12}" y="{ly - 10}" width="20" height="10"'
            f' fill="{FAULT_COLOURS.get(kind, "#7f7f7f")}" opacity="0.35"/>'
            f'<text x="{left + plot_w + 38}" y="{ly}">{html.escape(kind)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 0.1
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


# --- the page section --------------------------------------------------------------------------


def section(result: Result, plot: str | None) -> str:
    """The markdown of one run, for the section between this mode's markers."""
    a = result["accounting"]
    verdict = "**PASS**" if result["passed"] else "**FAIL**: " + "; ".join(result["failures"])
    lines = [
        f"Run of {result['started_at']} on {result['machine']}: "
        f"{result['minutes']:g} minutes, {verdict}.",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Load: {result['load']}",
        "",
        "**Acknowledged versus delivered**",
        "",
        table(
            ["what", "count"],
            [
                ["messages acknowledged (`ok`)", a["acked"]],
                ["stored in Postgres (rows)", a["stored"]],
                ["acknowledged but not stored (lost)", a["lost_in_storage"]],
                ["acknowledged, missing in REST history (`GET …/messages`)", a["missing_in_rest"]],
                ["stored but never acknowledged", a["stored_not_acked"]],
                ["a `client_id` stored twice", a["duplicates_stored"]],
                ["holes in a room's `seq`", a["seq_holes"]],
                ["deliveries owed (stored x receivers of the room)", a["owed"]],
                ["deliveries made (distinct `seq` received)", a["delivered"]],
                ["acknowledged messages some receiver never got (lost)", a["lost_acked"]],
                ["duplicate deliveries (a `seq` received twice)", a["duplicates_delivered"]],
                ["gaps (a `seq` arrived before an earlier one)", a["gaps"]],
                ["ghost members in presence after the run", a["ghost_members"]],
                ["receivers missing from presence", a["missing_members"]],
                ["rooms whose `active_members_count` is wrong", a["wrong_member_counts"]],
                ["sends refused for good", counts(a["refused"])],
                ["resends (after `unavailable` or a lost socket)", a["retries"]],
                ["resends answered `duplicate: true`", a["answered_duplicate"]],
                ["reconnects (senders and receivers)", a["reconnects"]],
                ["sockets opened", a["connects"]],
            ],
        ),
        "",
        f"Ack latency (send to `ok`, resends included): median {a['ack_p50_ms']:,.1f} ms,"
        f" p99 {a['ack_p99_ms']:,.1f} ms, max {a['ack_max_ms']:,.0f} ms.",
        "",
        f"Error codes received by the traffic clients: {counts(result['errors'])}.  ",
        f"Closes the clients did not ask for: {counts(result['closes'])}.  ",
        f"REST reader (`GET /v1/analyst/channels/{{id}}/messages` every 2 s): "
        f"{counts(result['rest'])}.",
    ]
    if result["faults"]:
        lines += ["", "**Faults injected**", "", _fault_table(result)]
    if result["hostile"]:
        lines += ["", "**Hostile frames** (rogue client, a member of a busy room)", ""]
        lines.append(
            table(
                ["frame", "outcomes", "promised"],
                [[k, counts(v["outcomes"]), v["promised"]] for k, v in result["hostile"].items()],
            )
        )
        lines.append("")
        lines.append(
            f"Rounds: {result['rogue']['rounds']:,}; rounds cut short because a fault had the"
            f" gateway away: {result['rogue']['unreachable']:,};"
            f" outcomes other than promised: {len(result['rogue']['unexpected']):,}."
        )
    lines += [
        "",
        "**Memory**",
        "",
        table(
            ["process", "MiB after warm-up", "MiB at end", "peak MiB", "end - start", "MiB/h"],
            memory_summary(result["memory"], result["warmup"]),
        ),
        "",
        f"RSS from /proc every {result['sample_every']:g} s (postgres: the cluster's summed"
        f" PSS, backends included); warm-up {result['warmup']:g} s excluded from the start"
        " column and the trend; start and end are medians of the first and last tenth.",
    ]
    if plot:
        lines += ["", f"![memory over time]({plot})"]
    return "\n".join(lines)


def _fault_table(result: Result) -> str:
    acks: list[list[float]] = result["acks"]
    events: list[list[Any]] = result["events"]
    faults = result["faults"]
    rows: list[list[object]] = []
    for i, fault in enumerate(faults):
        end = faults[i + 1]["at"] if i + 1 < len(faults) else result["minutes"] * 60
        window = [lat for at, lat in acks if fault["at"] <= at < end]
        seen = [kind for at, kind in events if fault["at"] <= at < end]
        refused: dict[str, int] = {}
        for kind in seen:
            if kind.startswith("refused:"):
                refused[kind[8:]] = refused.get(kind[8:], 0) + 1
        rows.append(
            [
                f"{fault['at']:.0f} s",
                fault["kind"],
                fault["target"],
                f"{fault['until'] - fault['at']:.1f} s",
                len(window),
                f"{max(window) * 1000:,.0f} ms" if window else "-",
                counts(refused, "-"),
                seen.count("reconnect"),
            ]
        )
    return table(
        [
            "at",
            "fault",
            "target",
            "lasted",
            "acks until next",
            "slowest ack",
            "refusals",
            "reconn.",
        ],
        rows,
    )


def write_section(path: Path, mode: str, body: str) -> None:
    """Put `body` between `<!-- {mode}-report:begin -->` and `...:end -->` in `path`,
    keeping everything else; the markers are appended when the page has none."""
    begin, end = f"<!-- {mode}-report:begin -->", f"<!-- {mode}-report:end -->"
    text = path.read_text() if path.exists() else f"# Reliability\n\n## Latest {mode} run\n"
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
