"""The seeded users a locust module plays: the credentials CSV its seed command wrote
(`email,password,user_type,user_id,channels`), read once per locust process into pools, each
new locust user taking the next credential of its pool; and the module's hook into locust
(its options, and the check at start that the file is there)."""

from __future__ import annotations

import csv
import functools
import itertools
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.ws_user import add_option

# ws_user.add_option with the parser given: option(name, default, help, type).
Option = Callable[..., None]


@dataclass(frozen=True, slots=True)
class Credential:
    email: str
    password: str
    user_type: str
    user_id: str
    channels: tuple[str, ...]

    def of(self, prefix: str) -> list[str]:
        """The channels of one namespace, such as "market.order:"."""
        return [c for c in self.channels if c.startswith(prefix)]


def read_credentials(path: Path) -> list[Credential]:
    """The rows of a credentials CSV, in file order."""
    names: dict[str, str] = {}  # one string per channel, password and role, not one per row
    with path.open(newline="") as f:
        return [
            Credential(
                r["email"],
                names.setdefault(r["password"], r["password"]),
                names.setdefault(r["user_type"], r["user_type"]),
                r["user_id"],
                tuple(names.setdefault(c, c) for c in r["channels"].split()),
            )
            for r in csv.DictReader(f)
        ]


def shuffle_pools(pools: dict[str, list[Credential]], seed: int) -> None:
    """Shuffle every pool in place, the n-th (from 0) with random.Random(seed + n): the same
    order on every run, another one per worker process when `seed` depends on its index."""
    for number, pool in enumerate(pools.values()):
        random.Random(seed + number).shuffle(pool)


class CredentialPools:
    """Credentials by pool name; `take` hands out the next one of a pool, round-robin, the
    first at `starts[pool]` (default 0). An empty pool is a SystemExit with the message
    `empty` (`{pool}` in it: the pool's name)."""

    def __init__(
        self,
        pools: dict[str, list[Credential]],
        empty: str,
        starts: dict[str, int] | None = None,
    ) -> None:
        self.pools = pools
        self.empty = empty
        first = starts or {}
        self._next = {name: itertools.count(first.get(name, 0)) for name in pools}

    def take(self, pool: str) -> Credential:
        rows = self.pools[pool]
        if not rows:
            raise SystemExit(self.empty.format(pool=pool))
        return rows[next(self._next[pool]) % len(rows)]


class SeededCredentials:
    """One locust module's credentials file: the option naming it (`option`, as parsed:
    "academy_credentials"; `default` when there are no options), the command that seeds it,
    and its pools, made by `pools(rows, worker_index)` at the first `take` of the process."""

    def __init__(
        self,
        option: str,
        default: Path,
        seed_command: str,
        pools: Callable[[list[Credential], int], CredentialPools],
    ) -> None:
        self.option = option
        self.default = default
        self.seed_command = seed_command
        self.make_pools = pools
        self._pools: CredentialPools | None = None

    def take(self, environment: Environment, pool: str) -> Credential:
        """The next credential of `pool`, for a new locust user."""
        if self._pools is None:
            runner = environment.runner
            index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
            options = environment.parsed_options
            path = Path(getattr(options, self.option)) if options else self.default
            self._pools = self.make_pools(read_credentials(path), index)
        return self._pools.take(pool)

    def register(
        self, declare: Callable[[Option], None], configure: Callable[[Any], None] | None = None
    ) -> None:
        """Hook the module into locust: `declare(option)` declares its options; at start,
        locust exits unless the credentials file exists, then `configure(options)` runs."""

        def on_parser(parser: Any) -> None:
            declare(functools.partial(add_option, parser))

        def on_init(environment: Environment, **_kwargs: Any) -> None:
            options = environment.parsed_options
            if options is None:
                return
            path = getattr(options, self.option)
            if not Path(path).is_file():
                sys.exit(f"{path} does not exist: seed first ({self.seed_command})")
            if configure is not None:
                configure(options)

        events.init_command_line_parser.add_listener(on_parser)  # type: ignore[no-untyped-call]
        events.init.add_listener(on_init)  # type: ignore[no-untyped-call]
