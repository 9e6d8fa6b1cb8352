"""The command line every seeding command (`python -m loadtests.seed`, `seed_<realm>`)
shares: its parser and the arguments of the logins, --tag, --domain and --out; its config
(one that fails its check is a usage error); and its run against DATABASE_URL, with progress
lines on stderr that end with the password and where the credentials went."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TypeVar

import asyncpg

from loadtests.seeding import LoginConfig, RunReport, Say, seed_database

Config = TypeVar("Config", bound=LoginConfig)
Report = TypeVar("Report", bound=RunReport)


def progress(command: str) -> Say:
    """A `say(message)` printing `[command] message` to stderr at once."""

    def say(message: str) -> None:
        print(f"[{command}] {message}", file=sys.stderr, flush=True)

    return say


class SeedCommand:
    """`python -m loadtests.<name>`: its `parser` (whose help is the module's docstring
    `doc`) with the arguments every seed command has, its config, and its run."""

    def __init__(self, name: str, doc: str | None) -> None:
        self.name = name
        self.parser = argparse.ArgumentParser(
            prog=f"python -m loadtests.{name}",
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    def add_login_arguments(
        self,
        password_help: str = "the password",  # noqa: S107 - a help text, not a password
        rounds_help: str = "cost of the one shared hash (default 4)",
    ) -> None:
        """--password and --bcrypt-rounds."""
        self.parser.add_argument("--password", default=LoginConfig.password, help=password_help)
        self.parser.add_argument(
            "--bcrypt-rounds", type=int, default=LoginConfig.bcrypt_rounds, help=rounds_help
        )

    def add_run_arguments(self, tag_help: str = "e-mail tag of this run (default: random)") -> None:
        """--tag and --domain."""
        self.parser.add_argument("--tag", default=None, help=tag_help)
        self.parser.add_argument("--domain", default=LoginConfig.domain, help="e-mail domain")

    def parse(
        self, config_type: Callable[..., Config], default_out: Path, argv: list[str] | None
    ) -> tuple[Config, Path]:
        """Add --out (the credentials CSV, the last argument) and parse `argv`: the config
        made of every other argument (each is named as its field; without --tag the config
        draws one), and the path. A config that fails its check exits as a usage error
        (status 2)."""
        self.parser.add_argument("--out", type=Path, default=default_out, help="credentials CSV")
        arguments = vars(self.parser.parse_args(argv))
        out: Path = arguments.pop("out")
        if not arguments["tag"]:
            del arguments["tag"]
        config = config_type(**arguments)
        try:
            config.check()
        except ValueError as exc:
            self.parser.error(str(exc))
        return config, out

    def run(
        self,
        probe_table: str,
        seed: Callable[[asyncpg.Connection, Config, Path, Say], Awaitable[Report]],
        config: Config,
        out: Path,
        opening: str | None,
        summary: Callable[[Report], Iterable[str]],
    ) -> None:
        """Seed `config`'s population into DATABASE_URL (migrated: `probe_table` exists) and
        write its credentials to `out`, saying `[name] ...` on stderr: `opening` (if any),
        each step, `summary(report)`, then the password and the credentials file."""
        say = progress(self.name)

        async def main() -> None:
            async with seed_database(probe_table) as conn:
                if opening is not None:
                    say(opening)
                report = await seed(conn, config, out, say)
            for line in summary(report):
                say(line)
            say(f"password for every seeded user: {config.password}")
            say(f"credentials: {out}")

        asyncio.run(main())
