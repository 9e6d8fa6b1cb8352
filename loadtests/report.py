"""Turn the JSON files of `loadtests.bench_gateway` into docs/benchmarks.md and its plots.

    python -m loadtests.report                          # loadtests/results -> docs/benchmarks.md
    python -m loadtests.report --results DIR --out FILE  # plots go to img/ next to FILE

A benchmark whose file is missing is reported as "not run yet" with the command that runs it.
Plots need matplotlib (Agg backend); without it the page has the tables only.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = "python -m loadtests.bench_gateway"
IDLE_WARMUP = 100  # bench_idle connects 100 sockets before its first RSS reading
# Published by others for this machine kind (2 cores), 1,000 subscribers in one room.
PEERS = [("Node socket.io", 126_000), ("websockets.broadcast", 77_000), ("python-socketio", 12_000)]
# The sizes of scripts/bench.sh (`make bench`), offered when a result file is missing.
DEFAULT_ARGS = {
    "idle": "idle --sockets 15000",
    "fanout-1p": "fanout --processes 1 --subscribers 100 500 1000 2000 --messages 1000",
    "fanout-2p": "fanout --processes 2 --subscribers 100 500 1000 2000 --messages 1000",
    "latency": "latency --rates 250 500 1000 1500 2000",
}
Result = dict[str, Any]


def load(results: Path, name: str) -> Result | None:
    path = results / f"gateway-{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def command(name: str, data: Result | None) -> str:
    """The command that produced `data` (its sizes), or the `make bench` one if not run."""
    if data is None:
        return f"{BENCH} {DEFAULT_ARGS[name]}"
    if name == "idle":
        return f"{BENCH} idle --sockets {data['sockets'] - IDLE_WARMUP}"
    points = data["points"]
    if name == "latency":
        rates = " ".join(str(p["offered_per_s"]) for p in points)
        return (
            f"{BENCH} latency --rates {rates} --rooms {data['rooms']}"
            f" --members {data['members_per_room']} --duration {data['duration_s']:g}"
        )
    subs = " ".join(str(p["subscribers"]) for p in points)
    return (
        f"{BENCH} fanout --processes {data['processes']} --subscribers {subs}"
        f" --messages {points[0]['messages']} --senders {points[0]['senders']}"
    )


def not_run(name: str) -> str:
    return f"Not run yet: `{command(name, None)}`"


def table(header: list[str], rows: list[list[str]], numeric: bool = True) -> str:
    """A markdown table; in a numeric one, every column but the first is right-aligned."""
    lines = [header, ["---"] + ["---:" if numeric else "---"] * (len(header) - 1), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def cell(value: object) -> str:
    if isinstance(value, float):
        value = round(value, 3)
    return f"{value:,}" if isinstance(value, int | float) else str(value)


def processes(count: int) -> str:
    return "1 process (in-process bus)" if count == 1 else f"{count} processes (over Redis)"


def at(points: list[Result], key: str, value: int) -> Result | None:
    return next((p for p in points if p[key] == value), None)


# --- plots ------------------------------------------------------------------------------------


def _figure() -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def plot_fanout(runs: list[Result], path: Path) -> None:
    from matplotlib.ticker import EngFormatter

    fig = _figure()
    ax = fig.add_subplot()
    for data in runs:
        xs = [p["subscribers"] for p in data["points"]]
        ys = [p["deliveries_per_s"] for p in data["points"]]
        ax.plot(
            xs,
            ys,
            marker="o",
            color=f"C{data['processes'] - 1}",
            label=processes(data["processes"]),
        )
    ax.set_title("Fan-out in one channel (bursts of concurrent sends, all persisted)")
    ax.set_xlabel("subscribers per channel")
    ax.set_ylabel("deliveries per second")
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.set_ylim(bottom=0)
    ax.set_xticks(sorted({p["subscribers"] for d in runs for p in d["points"]}))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def plot_latency(data: Result, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    xs = [p["offered_per_s"] for p in data["points"]]
    for q in ("p50", "p90", "p99"):
        ax.plot(xs, [p[f"{q}_ms"] for p in data["points"]], marker="o", label=q)
    ax.axhline(50, color="red", linestyle="--", linewidth=1, label="target: p99 ≤ 50 ms")
    ax.set_title(
        f"Send-to-receive latency ({data['rooms']} rooms x {data['members_per_room']} members,"
        " 1 gateway process)"
    )
    ax.set_xlabel("offered load (persisted messages per second)")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


# --- sections ---------------------------------------------------------------------------------


def targets(idle: Result | None, fan1: Result | None, lat: Result | None) -> str:
    rows = []
    goal = "15,000 concurrent authenticated sockets on one gateway process, ≤ 20 KiB each"
    if idle is None:
        rows.append([goal, not_run("idle"), "—"])
    else:
        ok = idle["sockets"] >= 15000 and idle["kib_per_socket"] <= 20
        measured = f"{idle['sockets']:,} sockets, {idle['kib_per_socket']} KiB each"
        rows.append([goal, measured, "yes" if ok else "no"])
    goal = "p99 send-to-receive ≤ 50 ms at 1,000 persisted messages/s"
    point = at(lat["points"], "offered_per_s", 1000) if lat else None
    if lat is None:
        rows.append([goal, not_run("latency"), "—"])
    elif point is None:
        rows.append([goal, "not measured (add 1000 to `--rates`)", "—"])
    else:
        lost = point["expected"] - point["delivered"]
        measured = f"p99 {cell(point['p99_ms'])} ms (p50 {cell(point['p50_ms'])} ms)"
        measured += f", {lost:,} of {point['expected']:,} not delivered" if lost else ""
        rows.append([goal, measured, "yes" if point["p99_ms"] <= 50 and not lost else "no"])
    point = at(fan1["points"], "subscribers", 1000) if fan1 else None
    for peer, figure in PEERS:
        goal = f"Fan-out, 1,000 subscribers, 1 process: ≥ {peer} (≈ {figure // 1000}k/s, reference)"
        if fan1 is None:
            rows.append([goal, not_run("fanout-1p"), "—"])
        elif point is None:
            rows.append([goal, "not measured (add 1000 to `--subscribers`)", "—"])
        else:
            rate = point["deliveries_per_s"]
            measured = f"{rate:,} deliveries/s ({rate / figure:.1f}x the reference)"
            rows.append([goal, measured, "yes" if rate >= figure else "no"])
    return table(["Target", "Measured", "Met"], rows, numeric=False)


def fanout_section(runs: dict[int, Result | None], plots: bool, img: Path) -> str:
    out = [
        "Each point: one channel with that many subscribers, and `senders` sockets sending"
        " `messages` messages as fast as they can. Deliveries per second = subscribers"
        " times messages, divided by the time from the first send until every subscriber has"
        " every message.",
    ]
    keys = ["subscribers", "messages", "senders", "seconds", "deliveries_per_s"]
    present = [d for d in runs.values() if d is not None]
    rows = [
        [str(d["processes"])] + [cell(p[k]) for k in keys] for d in present for p in d["points"]
    ]
    if rows:
        header = ["Processes", "Subscribers", "Messages", "Senders", "Seconds", "Deliveries/s"]
        out += ["", table(header, rows)]
        if plots:
            plot_fanout(present, img / "fanout.png")
            out += ["", "![Fan-out deliveries per second](img/fanout.png)"]
    for procs, data in runs.items():
        if data is None:
            out += ["", f"{processes(procs)}: {not_run(f'fanout-{procs}p')}"]
    return "\n".join(out)


def latency_section(lat: Result | None, plots: bool, img: Path) -> str:
    if lat is None:
        return not_run("latency")
    out = [
        f"{lat['rooms']} rooms of {lat['members_per_room']} members on one gateway process; one"
        " member per room sends at a steady rate (open loop) so that the rooms together offer"
        f" the load, for {lat['duration_s']:g} s per point. Latency runs from the moment the"
        " harness writes the send frame until a member reads the message, for every member.",
        "",
    ]
    keys = ["offered_per_s", "sent_per_s", "delivered", "expected"]
    keys += ["p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"]
    rows = [[cell(p[k]) for k in keys] for p in lat["points"]]
    header = ["Offered msg/s", "Sent msg/s", "Delivered", "Expected"]
    header += ["p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"]
    out.append(table(header, rows))
    if plots:
        plot_latency(lat, img / "latency.png")
        out += ["", "![Latency percentiles against offered load](img/latency.png)"]
    return "\n".join(out)


def idle_section(idle: Result | None) -> str:
    if idle is None:
        return not_run("idle")
    grown = idle["sockets"] - IDLE_WARMUP
    keys = ["sockets", "rss_before_kib", "rss_after_kib", "kib_per_socket", "connect_per_s"]
    row = [cell(idle[k]) for k in keys]
    header = ["Sockets", "RSS before (KiB)", "RSS after (KiB)", "KiB per socket", "Connections/s"]
    return (
        "Authenticated sockets that join their user stream and then stay idle, all on one"
        " gateway process. RSS (VmRSS) of that process is read after"
        f" {IDLE_WARMUP} warm-up sockets and again after the other {grown:,}; KiB per socket is"
        " the growth divided by those sockets.\n\n" + table(header, [row])
    )


# --- notifications (loadtests/bench_notifications.py) -------------------------------------------

NOTIFY_BENCH = "python -m loadtests.bench_notifications"
NOTIFY_PARTS = ("creation", "delivery", "inapp")


def load_notifications(results: Path) -> Result:
    path = results / "notifications.json"
    return json.loads(path.read_text()) if path.exists() else {}


def notify_command(part: str, data: Result | None) -> str:
    return f"{NOTIFY_BENCH} {data['command'] if data else '--parts ' + part}"


def notify_not_run(part: str) -> str:
    return f"Not run yet: `{notify_command(part, None)}`"


def worker_processes(count: int) -> str:
    return "1 worker process" if count == 1 else f"{count} worker processes"


def plot_notify_delivery(delivery: Result, path: Path) -> None:
    from matplotlib.ticker import EngFormatter

    fig = _figure()
    ax = fig.add_subplot()
    names = {"push": "push", "email": "e-mail"}
    styles = ["-", "--", ":", "-."]
    for r, run in enumerate(delivery["runs"]):
        workers = run["concurrency"]["workers"]
        for i, ch in enumerate(run["channels"]):
            xs = [point[0] for point in ch["curve"]]
            ys = [point[1] for point in ch["curve"]]
            label = f"{names.get(ch['channel'], ch['channel'])}, {worker_processes(workers)}:"
            ax.plot(
                xs,
                ys,
                color=f"C{i}",
                linestyle=styles[r % len(styles)],
                label=f"{label} {ch['per_s']:,.0f}/s",
            )
    ax.set_title("Outbox drained by run_delivery workers (jobs committed at t = 0)")
    ax.set_xlabel("seconds since the jobs were committed")
    ax.set_ylabel("jobs sent")
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)


def plot_notify_latency(inapp: Result, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    quantiles = inapp["quantiles_ms"]
    ax.plot(quantiles, list(range(len(quantiles))), color="C0", drawstyle="steps-post")
    for q, color in (("p50", "C1"), ("p99", "C3")):
        value = inapp[f"{q}_ms"]
        ax.axvline(value, color=color, linestyle="--", linewidth=1, label=f"{q}: {value:g} ms")
    ax.set_title(
        f"In-app notification, commit to socket ({inapp['users']} users, 1 gateway process,"
        f" {inapp['offered_per_s']:g}/s)"
    )
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("notifications delivered within (%)")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def notify_creation_section(creation: Result | None) -> str:
    if creation is None:
        return notify_not_run("creation")
    keys = ["run", "recipients", "notifications", "push_jobs", "email_jobs", "seconds"]
    keys += ["notifications_per_s", "jobs_per_s"]
    header = ["Run", "Recipients", "Notifications", "Push jobs", "E-mail jobs", "Seconds"]
    header += ["Notifications/s", "Jobs/s"]
    rows = [[cell(r[k]) for k in keys] for r in creation["runs"]]
    return "\n".join(
        [
            f"One `notify()` to `subscribers_of(analyst)` for an analyst with"
            f" {creation['subscribers']:,} active subscribers, each with a verified e-mail"
            " address and one push device. It is one statement: per subscriber a notification"
            " (in-app, so it also queues a NOTIFY for the gateways), a push job and an e-mail"
            " job. No gateway or worker runs meanwhile. Run 1 is the first event on freshly"
            " seeded (and analysed) tables; each later run is a new event on the grown tables.",
            "",
            table(header, rows),
            "",
            f"Replaying the last event (same `event_key`) created"
            f" {creation['replay_created']:,} notifications in"
            f" {cell(creation['replay_seconds'])} s.",
        ]
    )


def notify_delivery_section(delivery: Result | None, plots: bool, img: Path) -> str:
    if delivery is None:
        return notify_not_run("delivery")
    c = delivery["runs"][0]["concurrency"]
    out = [
        "The jobs of one channel are committed by one `notify()` while `run_delivery` runs,"
        " idle and listening, in one or more worker processes (asyncio's loop, a database pool"
        f" of {c['worker_pool']} each, INFO logging as in production); seconds run from just"
        " before that commit to the last job's `sent_at`. Push goes through pyfcm, with"
        " google-auth's OAuth flow, to the FCM stand-in of `tests/notifications/fakes.py`;"
        " e-mail through aiosmtplib, one SMTP connection per message, to its aiosmtpd sink."
        " The stand-ins answer at once, in a process of their own, so these are the workers'"
        " own ceilings on this machine, not a provider's.",
        "",
        f"Concurrency per worker process (the code's defaults): claim batches of"
        f" {c['claim_batch']} jobs, each finished before the next claim;"
        f" {c['push_threads']} push threads; {c['smtp_connections']} SMTP connections at once."
        ' "Batch" is the mean time from a claim to the last job of that batch sent, against'
        " the mean time to a job sent: the gap is time the batch waits for its stragglers."
        " CPU is in % of one core; the machine's in % of all its cores.",
        "",
    ]
    header = ["Channel", "Workers", "Jobs", "Sent", "Seconds", "Deliveries/s", "Batch ms"]
    header += ["Job ms", "Workers CPU", "Stand-ins CPU", "Machine CPU"]
    rows = []
    problems = 0
    for run in delivery["runs"]:
        problems += run.get("worker_log_problems", 0)
        for ch in run["channels"]:
            batches = ch.get("batches") or {}
            rows.append(
                [
                    ch["channel"],
                    str(run["concurrency"]["workers"]),
                    cell(ch["jobs"]),
                    cell(ch["sent"]),
                    cell(ch["seconds"]),
                    cell(round(ch["per_s"])),
                    cell(batches.get("mean_span_ms", "—")),
                    cell(batches.get("mean_job_ms", "—")),
                    f"{ch['workers_cpu_pct']:g}%",
                    f"{ch['stand_ins_cpu_pct']:g}%",
                    f"{ch['machine_cpu_pct']:g}%",
                ]
            )
    out.append(table(header, rows))
    if problems:
        out += ["", f"The worker logs had {problems} warning/error lines."]
    if plots and rows:
        plot_notify_delivery(delivery, img / "notifications-delivery.png")
        out += ["", "![Jobs sent over time, push and e-mail](img/notifications-delivery.png)"]
    return "\n".join(out)


def notify_inapp_section(inapp: Result | None, plots: bool, img: Path) -> str:
    if inapp is None:
        return notify_not_run("inapp")
    out = [
        f"{inapp['users']} users connected to one gateway process with the benchmark client;"
        f" {inapp['committed']:,} notifications committed one at a time at"
        f" {inapp['offered_per_s']:g}/s (open loop) for {inapp['duration_s']:g} s, each by"
        " `notify()` with a list of one user id inside the caller's transaction. Latency runs"
        " from just before COMMIT to the `notification` frame's arrival at the user's socket:"
        " the NOTIFY, the gateway's load query (`gateway/notifications.py`) and the write.",
        "",
    ]
    keys = ["users", "offered_per_s", "committed_per_s", "committed", "delivered"]
    keys += ["p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"]
    header = ["Users", "Offered/s", "Committed/s", "Committed", "Delivered"]
    header += ["p50 ms", "p90 ms", "p99 ms", "max ms", "mean ms"]
    out.append(table(header, [[cell(inapp[k]) for k in keys]]))
    if inapp.get("duplicates"):
        out += ["", f"{inapp['duplicates']} frames arrived twice."]
    if plots:
        plot_notify_latency(inapp, img / "notifications-latency.png")
        out += ["", "![In-app latency distribution](img/notifications-latency.png)"]
    return "\n".join(out)


def notifications_section(results: Path, plots: bool, img: Path) -> str:
    data = load_notifications(results)
    parts = {name: data.get(name) for name in NOTIFY_PARTS}
    ran = [
        f"    {notify_command(name, part)}" + ("" if part else "  # not run yet")
        for name, part in parts.items()
    ]
    rows = [
        [name]
        + [str(part["machine"][k]) for k in ("date", "cpus", "python")]
        + [f"{part.get('background_cpu_pct', '—')}%"]
        for name, part in parts.items()
        if part
    ]
    header = ["Part", "Date", "CPUs", "Python", "Machine busy before"]
    return "\n".join(
        [
            "The notification path of `docs/notifications.md`, measured by"
            " `loadtests/bench_notifications.py`: how fast one `notify()` writes a large"
            " fan-out, how fast the delivery workers drain the outbox, and how long an in-app"
            " notification takes from commit to socket. Each part builds a throwaway database"
            " on the same Postgres; everything runs on loopback on this machine, load generator"
            " included. `make bench` runs it at its default sizes; these figures came from:",
            "",
            *ran,
            "",
            table(header, rows, numeric=False) if rows else "No results yet.",
            "",
            '"Machine busy before" is the CPU in use during the second before the part'
            " started (other work on the machine, which the figures then share it with).",
            "",
            "### Creating a fan-out: one `notify()` call",
            "",
            notify_creation_section(parts["creation"]),
            "",
            "### Delivering push and e-mail: the outbox drained",
            "",
            notify_delivery_section(parts["delivery"], plots, img),
            "",
            "### In-app: commit to socket",
            "",
            notify_inapp_section(parts["inapp"], plots, img),
        ]
    )


# --- the race against peers (loadtests/race.py) -------------------------------------------------


def race_section(results: Path, plots: bool, img: Path) -> str:
    """The race's targets and tables (docs/race.md has the same and more), from race.json."""
    path = results / "race.json"
    if not path.exists():
        return "Not run yet: `make race` runs it and writes this section and docs/race.md."
    from loadtests import race  # the race's own tables, so both pages say the same

    data = json.loads(path.read_text())
    if plots:
        if data["fanout"]["points"]:
            race.plot_fanout(data, img / "race-fanout.png")
        if data["latency"]["points"]:
            race.plot_latency(data, img / "race-latency.png")
    m = data["machine"]
    parts = [
        "The same room-broadcast workloads, side by side in one run on this machine, against"
        " python-socketio (aiohttp) and the Node socket.io server, minimal room-broadcast"
        " servers kept in `loadtests/peers/`. **Switchboard** is the gateway with every"
        " message stored in Postgres before fan-out (`community:` rooms); **Switchboard live**"
        " is the same gateway and rooms as `community.live:` channels, which broadcast"
        " without storing (ADR 0004), as the peers do. How the harness works, what differs"
        " between the servers and the CPU used at every point: docs/race.md.",
        "",
        f"Command: `make race`, which runs `{data['command']}`"
        f" ({m['cpus']} CPUs, {m['cpu_model']}, run {m['date']}, {data['runtime_s']:g} s;"
        " versions in docs/race.md).",
        "",
        "### Targets",
        "",
        *((race.noisy_warning(data), "") if race._noisy(data) else ()),
        race.targets_section(data),
        "",
        "### Fan-out",
        "",
        race.fanout_section(data, plots) if data["fanout"]["points"] else "Not run.",
        "",
        "### Send-to-receive latency",
        "",
        race.latency_section(data, plots) if data["latency"]["points"] else "Not run.",
        "",
        "### Memory per socket",
        "",
        race.memory_section(data) if data["fanout"]["points"] else "Not run.",
    ]
    return "\n".join(parts)


# Sections after this line (realm and issue benchmarks, written by hand from their own
# harnesses' results) survive a regeneration of the page.
HANDWRITTEN = "<!-- Written by hand below this line; `python -m loadtests.report` keeps it. -->"


def render(results: Path, out: Path) -> str:
    names = ["idle", "fanout-1p", "fanout-2p", "latency"]
    data = {name: load(results, name) for name in names}
    plots = importlib.util.find_spec("matplotlib") is not None
    img = out.parent / "img"
    if plots:
        img.mkdir(parents=True, exist_ok=True)
    keys = ["date", "cpus", "python", "platform"]
    machines = [[name] + [str(d["machine"][k]) for k in keys] for name, d in data.items() if d]
    lat = data["latency"]
    per_room = ""
    if lat and lat["points"]:
        top = max(p["offered_per_s"] for p in lat["points"]) / lat["rooms"]
        per_room = f" (at most {top:g} messages per second per room)"
    ran = [
        f"    {command(name, data[name])}" + ("" if data[name] else "  # not run yet")
        for name in names
    ]
    parts = [
        "# Gateway benchmarks",
        "",
        "<!-- Generated by `python -m loadtests.report` from loadtests/results/. -->",
        "",
        "Three raw benchmarks of the realtime gateway: how many idle authenticated sockets one"
        " process holds and what each costs in memory, how many message deliveries per second"
        " one channel reaches, and the send-to-receive latency at a steady message rate. Every"
        " delivered message was first persisted in Postgres (the durable cluster of `make run`,"
        " synchronous commit) before its ack. The load generator is an asyncio harness"
        " (`loadtests/bench_gateway.py`) on the same 2-core machine, so the load generator and"
        " the server share the CPU.",
        "",
        "`make bench` runs everything at its default sizes (starting Postgres and Redis) and"
        " then this report. The figures below came from these commands (with `DATABASE_URL`"
        " set to a Postgres server), followed by `python -m loadtests.report`:",
        "",
        *ran,
        "",
        "## Machine",
        "",
        table(["Benchmark", "Date", "CPUs", "Python", "Platform"], machines, numeric=False)
        if machines
        else "No results yet.",
        "",
        f"Report written {time.strftime('%Y-%m-%d')}.",
        "",
        "## Targets",
        "",
        targets(data["idle"], data["fanout-1p"], data["latency"]),
        "",
        "The fan-out reference figures (Node socket.io ≈ 126k, websockets.broadcast ≈ 77k,"
        " python-socketio ≈ 12k deliveries/s, each for 1,000 subscribers in one room) were"
        " measured by others on this machine kind with their own harnesses. They are reference"
        " figures, not a side-by-side run: none of them was run here.",
        "",
        "## Fan-out",
        "",
        fanout_section({1: data["fanout-1p"], 2: data["fanout-2p"]}, plots, img),
        "",
        "## Send-to-receive latency",
        "",
        latency_section(data["latency"], plots, img),
        "",
        "## Idle sockets and memory",
        "",
        idle_section(data["idle"]),
        "",
        "## How to read these numbers",
        "",
        "The fan-out figures come from bursts of concurrent sends. Messages from many senders"
        " arriving together share one group commit (one database round trip for the batch),"
        " and the messages a room delivers in one event-loop iteration are written to each"
        " socket with one write call. That is why a burst reaches far more deliveries per"
        " second than one message at a time would. At low per-room rates, as in the latency"
        f" benchmark{per_room}, a message is usually alone in its iteration and costs one write"
        " per recipient. So the fan-out figures are a ceiling for busy rooms, not a rate every"
        " room gets.",
        "",
        "Two gateway processes deliver fewer messages per second than one here. On this 2-core"
        " machine the two processes, Redis, Postgres and the load generator share two cores,"
        " and each message crosses Redis once more and is coalesced less (the Redis reader"
        " hands over messages one by one). Several processes pay off when they have cores of"
        " their own, and they are what lets sockets and rooms outgrow one process at all.",
        "",
        "## Notifications",
        "",
        notifications_section(results, plots, img),
        "",
        "## Race against python-socketio and Node socket.io",
        "",
        race_section(results, plots, img),
        "",
    ]
    if not plots:
        parts += ["Plots need `pip install matplotlib`; this page has the tables only.", ""]
    return "\n".join(parts) + handwritten_tail(out)


def handwritten_tail(out: Path) -> str:
    """The sections below `HANDWRITTEN` in the existing page, kept as they are."""
    text = out.read_text() if out.exists() else ""
    at = text.find(HANDWRITTEN)
    return "" if at < 0 else "\n" + text[at:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "loadtests" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args.results, args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
