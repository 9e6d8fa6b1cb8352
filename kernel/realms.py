"""The realm registry: what a realm declares (`Realm`) and which realms a process serves.

A realm is a package (normally `realms/<name>/`) whose `REALM` object says, in one place,
what it brings: its SQL migrations, how a token's user is looked up, its REST routes, its
gateway namespaces, its scheduled jobs and notification categories. Processes ask
`enabled_realms()` for the realms named by SWITCHBOARD_REALMS (default: every package under
realms/ that declares one) and never import a realm by name. docs/realms.md has the recipe.
"""

from __future__ import annotations

import importlib
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kernel.errors import NotFound, Unauthorized

if TYPE_CHECKING:
    import asyncpg
    from aiohttp import web

    from kernel.conversation import Namespace, NamespaceContext
    from kernel.jobs import Job

OfflineNotify = Callable[
    ["asyncpg.Connection", list[str], str, str, str, "uuid.UUID"], Awaitable[int]
]

REALMS_DIR = Path(__file__).resolve().parent.parent / "realms"
REALM_NAME = re.compile(r"^[a-z][a-z0-9]{1,30}$")
MAX_BIGINT = 2**63 - 1


class RealmError(Exception):
    """A realm cannot be loaded or declares something inconsistent; the message says what."""


@dataclass(frozen=True, kw_only=True)
class Realm:
    """Everything one realm brings. Only `name`, `schema` and `summary` are required."""

    name: str
    schema: str
    summary: str
    # The type of the seed's user ids: UUID in most seeds, BIGINT (BIGSERIAL) in seed 004.
    user_id_type: Literal["uuid", "bigint"] = "uuid"
    sql_dir: Path | None = None
    # SQL returning (user_type text, active boolean) of the user whose id is $1, or no row.
    user_lookup_sql: str | None = None
    # SQL returning (id, email, email_verified, active) of the users whose ids are in the array
    # $1 (of the realm's id type): who kernel/notify.py may reach by e-mail, and who is gone.
    # An optional fifth column `phone` (E.164 text, NULL: do not text) is the number SMS goes
    # to (notify(send_sms=True)); without it nobody of the realm gets SMS.
    # None: the realm's users have no e-mail address or phone number the core may use.
    contact_sql: str | None = None
    # REST: route tables, loaded only by the api (so other processes skip their imports).
    routes: Callable[[], Sequence[web.RouteTableDef]] | None = None
    # Prepare the api application for this realm's routes (keys, cleanup contexts).
    api_setup: Callable[[web.Application], None] | None = None
    # The analyst realm predates per-realm paths: its routes also answer without the prefix.
    unprefixed_paths: bool = False
    # Gateway: the realm's channel namespaces, built once per gateway process.
    namespaces: Callable[[NamespaceContext], Sequence[Namespace]] | None = None
    # Workers: the realm's scheduled jobs.
    jobs: Callable[[], Sequence[Job]] | None = None
    notification_categories: Sequence[str] = field(default_factory=tuple)
    # Whether its users have the in-app inbox of kernel/inbox.py: missed notifications on
    # connect, marking read over the socket and over REST. Every realm has one by default.
    in_app_inbox: bool = True
    # The table of its in-app notifications: the core's gateway.notifications (rows carry
    # realm and the user id as text), or a table of the realm's own with the columns of
    # analyst.notifications and user ids of its id type ("analyst.notifications").
    inbox_table: str = "gateway.notifications"
    # Tell members who are not in a conversation that it has new messages (push, e-mail per
    # their preferences): (conn, user ids, event key, title, body, conversation id) -> count.
    # The core collapses: one event key per member and unread streak. None: nobody is told.
    notify_offline: OfflineNotify | None = None

    def __post_init__(self) -> None:
        if not REALM_NAME.match(self.name):
            raise RealmError(f"realm names are 2-31 lower-case letters or digits: {self.name!r}")

    def parse_user_id(self, raw: str) -> str:
        """The canonical spelling of a user id of this realm; Unauthorized when it is not one."""
        if self.user_id_type == "uuid":
            try:
                return str(uuid.UUID(raw))
            except ValueError:
                raise Unauthorized("token subject is not a user id") from None
        if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_BIGINT:
            return str(int(raw))
        raise Unauthorized("token subject is not a user id")

    def user_id_value(self, user_id: str) -> uuid.UUID | int:
        """A canonical user id as the database driver wants it for this realm's id type."""
        return uuid.UUID(user_id) if self.user_id_type == "uuid" else int(user_id)

    @property
    def user_stream_namespace(self) -> str:
        """The namespace of users' own streams: `user` (analyst, as before realms), else
        `<realm>.user`, so that two realms' user ids never share a channel."""
        return "user" if self.unprefixed_paths else f"{self.name}.user"

    def user_stream(self, user_id: str) -> str:
        return f"{self.user_stream_namespace}:{user_id}"


class Realms:
    """The enabled realms of a process, by name."""

    def __init__(self, realms: Sequence[Realm]) -> None:
        self._by_name: dict[str, Realm] = {}
        for realm in realms:
            if realm.name in self._by_name:
                raise RealmError(f"realm {realm.name!r} is enabled twice")
            self._by_name[realm.name] = realm

    def __iter__(self) -> Iterator[Realm]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> Realm:
        """The realm `name`; NotFound (naming the served ones) when it is not enabled here."""
        realm = self._by_name.get(name)
        if realm is None:
            raise NotFound(f"no realm {name!r} here (served: {', '.join(self._by_name)})")
        return realm

    def for_token(self, name: str) -> Realm:
        """The realm of a token's `realm` claim; Unauthorized when it is not served here."""
        realm = self._by_name.get(name)
        if realm is None:
            raise Unauthorized(f"realm {name!r} is not served here")
        return realm

    def jobs(self) -> list[tuple[str, Job]]:
        """(realm, job) of every declared job; job names are unique across realms, since a
        name is a job's identity in gateway.job_runs."""
        seen: dict[str, str] = {}
        out: list[tuple[str, Job]] = []
        for realm in self:
            for job in realm.jobs() if realm.jobs is not None else ():
                if job.name in seen:
                    raise RealmError(
                        f"job {job.name!r} is declared by {seen[job.name]} and {realm.name}"
                    )
                seen[job.name] = realm.name
                out.append((realm.name, job))
        return out

    def sql_dirs(self) -> list[Path]:
        return [r.sql_dir for r in self if r.sql_dir is not None]


def discover() -> list[str]:
    """Every realm package under realms/ (folders with an __init__.py), in name order."""
    return sorted(
        p.name for p in REALMS_DIR.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
    )


def load_realm(entry: str) -> Realm:
    """Import one realm: `analyst` is the package realms.analyst; a dotted entry
    (`tests.realm_fixture`) is any importable module; either must define REALM."""
    module_name = entry if "." in entry else f"realms.{entry}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RealmError(f"realm {entry!r} cannot be imported: {exc}") from exc
    realm = getattr(module, "REALM", None)
    if not isinstance(realm, Realm):
        raise RealmError(f"module {module_name} declares no REALM")
    return realm


def realm_entries(environ: Mapping[str, str] | None = None) -> list[str]:
    """The entries of SWITCHBOARD_REALMS (comma-separated), or every discovered realm."""
    env = os.environ if environ is None else environ
    raw = env.get("SWITCHBOARD_REALMS", "").strip()
    if not raw:
        return discover()
    return [part.strip() for part in raw.split(",") if part.strip()]


def enabled_realms(environ: Mapping[str, str] | None = None) -> Realms:
    """The realms this process serves (SWITCHBOARD_REALMS, default every realm package)."""
    return Realms([load_realm(entry) for entry in realm_entries(environ)])
