"""The accounting of a chaos run: what the clients were told (acks), what Postgres and the
api's history hold, what every receiver got, and presence once the senders left; and which
of these break a promise of docs/reliability.md."""

from __future__ import annotations

import asyncio
import statistics
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from loadtests.chaos_clients import Receiver, RestReader, Sender, Tally


@dataclass
class Room:
    channel_id: str
    reader: RestReader
    senders: list[Sender] = field(default_factory=list)
    receivers: list[Receiver] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"community:{self.channel_id}"


async def account(
    dsn: str, rooms: list[Room], churners: list[Sender], tally: Tally
) -> dict[str, Any]:
    """Every acknowledged message stored once, present in REST history and delivered once
    to every receiver of its room, in seq order; presence as it must be once the senders
    left. Call it when the senders have stopped; the receivers must still be running."""
    conn = await asyncpg.connect(dsn)
    senders = [*(s for room in rooms for s in room.senders), *churners]
    acked = {(s.channel, cid): mid for s in senders for cid, mid in s.acked.items()}
    a: dict[str, Any] = dict.fromkeys(
        [
            "stored",
            "lost_in_storage",
            "missing_in_rest",
            "stored_not_acked",
            "duplicates_stored",
            "seq_holes",
            "owed",
            "delivered",
            "lost_acked",
            "duplicates_delivered",
            "gaps",
        ],
        0,
    )
    try:
        for room in rooms:
            rows = await conn.fetch(
                "SELECT seq, id::text, client_id FROM analyst.chat_messages"
                " WHERE channel_id = $1 ORDER BY seq",
                uuid.UUID(room.channel_id),
            )
            stored = {r["client_id"]: r["id"] for r in rows}
            mine = {cid: mid for (ch, cid), mid in acked.items() if ch == room.name}
            a["stored"] += len(rows)
            a["duplicates_stored"] += len(rows) - len(stored)
            a["seq_holes"] += (rows[-1]["seq"] if rows else 0) - len(rows)
            a["lost_in_storage"] += sum(stored.get(c) != m for c, m in mine.items())
            a["stored_not_acked"] += len(set(stored) - set(mine))
            rest = set((await room.reader.all_ids()).values())
            a["missing_in_rest"] += len(set(mine.values()) - rest)
            by_seq = {r["seq"]: r["id"] for r in rows}
            last = max(by_seq, default=0)
            for receiver in room.receivers:
                if not await receiver.reach(last, 60):
                    print(f"[chaos] {receiver.name} stopped at seq {receiver.last} of {last}")
                got = {s: i for s, i in receiver.ids.items() if by_seq.get(s) == i}
                a["owed"] += len(by_seq)
                a["delivered"] += len(got)
                a["lost_acked"] += len(set(mine.values()) - set(got.values()))
                a["duplicates_delivered"] += receiver.duplicates
                a["gaps"] += receiver.gaps
        a.update(await presence(conn, rooms))
    finally:
        await conn.close()
    latencies = sorted(lat for _, lat in tally.acks) or [0.0]
    a.update(
        acked=len(acked),
        retries=sum(s.retries for s in senders),
        answered_duplicate=sum(s.answered_duplicate for s in senders),
        reconnects=sum(k == "reconnect" for _, k in tally.events),
        connects=tally.connects,
        ack_p50_ms=statistics.median(latencies) * 1000,
        ack_p99_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
        ack_max_ms=latencies[-1] * 1000,
    )
    codes: dict[str, int] = {}
    for s in senders:
        for code in s.refused.values():
            codes[code] = codes.get(code, 0) + 1
    a["refused"] = codes
    return a


async def presence(conn: asyncpg.Connection, rooms: list[Room]) -> dict[str, int]:
    """Once the senders and churners left, presence and the member counts must name the
    receivers and nobody else (a killed gateway's rows go when it is swept, within
    GATEWAY_NODE_TTL). Polled: the database announces nothing."""
    expected = {(room.name, rc.who.user) for room in rooms for rc in room.receivers}
    counts_wanted = {uuid.UUID(room.channel_id): len(room.receivers) for room in rooms}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        rows = await conn.fetch(
            "SELECT DISTINCT channel, user_id FROM gateway.live_members"
            " WHERE channel = ANY($1::text[])",
            [room.name for room in rooms],
        )
        present = {(r["channel"], r["user_id"]) for r in rows}
        counted = await conn.fetch(
            "SELECT id, active_members_count FROM analyst.chat_channels WHERE id = ANY($1)",
            list(counts_wanted),
        )
        wrong = sum(r["active_members_count"] != counts_wanted[r["id"]] for r in counted)
        if (present == expected and not wrong) or loop.time() > deadline:
            return {
                "ghost_members": len(present - expected),
                "missing_members": len(expected - present),
                "wrong_member_counts": wrong,
            }
        await asyncio.sleep(0.5)


def broken_promises(a: dict[str, Any], tally: Tally, unfinished: int) -> list[str]:
    """The promises the accounting `a` and the clients' tally show broken."""
    failures = [
        f"{label}: {a[key]}"
        for key, label in [
            ("lost_in_storage", "acknowledged but not stored"),
            ("missing_in_rest", "acknowledged, missing in REST history"),
            ("lost_acked", "acknowledged, not delivered"),
            ("duplicates_stored", "stored twice"),
            ("duplicates_delivered", "delivered twice"),
            ("gaps", "delivered out of order"),
            ("seq_holes", "holes in seq"),
            ("ghost_members", "ghost members in presence"),
            ("missing_members", "members missing from presence"),
            ("wrong_member_counts", "rooms with a wrong active_members_count"),
        ]
        if a[key]
    ]
    if a["owed"] != a["delivered"]:
        failures.append(f"deliveries missing: {a['owed'] - a['delivered']}")
    if unfinished:
        failures.append(f"{unfinished} clients never got their last send acknowledged")
    if tally.rest.get("500"):
        failures.append(f"the api answered 500 {tally.rest['500']} times (503 promised)")
    if tally.closes.get("1011"):
        failures.append(f"{tally.closes['1011']} sessions closed with 1011")
    return failures
