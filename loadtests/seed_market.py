"""Seed a market load-test population, set-based, and write the credentials file that
`loadtests/locust_market.py` and `loadtests/bench_market.py` read.

    python -m loadtests.seed_market --buyers 2000 --sellers 200 --couriers 500 \\
        --orders 500 --chats 1000 --out loadtests/results/market_credentials.csv

DATABASE_URL names the database (migrated: `make run` does that). The population (one run,
one random tag; seeding again adds another population beside it):

- `--buyers` buyers with one delivery address each, `--sellers` sellers with
  `--products` active products each (one category per run, stock 1000), `--couriers`
  couriers. Everyone is active with a verified e-mail and has the same password behind ONE
  bcrypt hash at `--bcrypt-rounds` (default 4: a cheap login for the load generator).
  E-mails are `lt-<tag>-<b|s|c><n>@<domain>`.
- `--orders` orders `in_transit`: order n is buyer n's (round-robin), of seller n's first
  product, with courier n (round-robin) assigned and one `order_tracking` row at a Tashkent
  position, so each courier has orders to drive and each of those buyers one to watch.
- `--chats` direct buyer<->seller chats (buyer n with seller n, round-robin; at most one
  per buyer, so each pair is unique), with two messages each (the buyer's question and the
  seller's answer; both participants have read them).

Every table is filled by one INSERT ... SELECT over generate_series in one transaction. The
credentials file has one row per user: `email,password,user_type,user_id,channels`, with
user_type buyer, seller or courier and channels the space-separated `market.order:<id>` and
`market.chat:<id>` channels the user may join.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from loadtests.seed_command import SeedCommand
from loadtests.seeding import LoginConfig, RunReport, SeedRun, count

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "loadtests" / "results" / "market_credentials.csv"
CREDENTIAL_COLUMNS = ("email", "password", "user_type", "user_id", "channels")
# Where seeded couriers start (Tashkent centre) and how far they are spread.
ORIGIN = (41.2995, 69.2401)
SPREAD = 0.05


@dataclass(frozen=True)
class MarketSeedConfig(LoginConfig):
    buyers: int = 2_000
    sellers: int = 200
    couriers: int = 500
    products: int = 5  # per seller
    orders: int = 500
    chats: int = 1_000

    def check(self) -> None:
        if min(self.buyers, self.sellers, self.couriers, self.products) < 1:
            raise ValueError("--buyers, --sellers, --couriers and --products must be at least 1")
        if self.orders < 0 or self.chats < 0:
            raise ValueError("--orders and --chats must be at least 0")
        if self.chats > self.buyers:
            raise ValueError("--chats is at most --buyers (one direct chat per buyer)")
        super().check()


@dataclass
class MarketSeedReport(RunReport):
    buyers: int = 0
    sellers: int = 0
    couriers: int = 0
    products: int = 0
    orders: int = 0
    chats: int = 0
    messages: int = 0
    credentials: int = 0


_TEMP_TABLES = ("lt_mk_users", "lt_mk_products", "lt_mk_orders", "lt_mk_chats")

# Every seeded user with its run-local number n within its role.
_USERS = """
CREATE TEMP TABLE lt_mk_users AS
WITH wanted AS (
    SELECT 'buyer'::text AS role, 'b' AS k, g AS n FROM generate_series(1, $1) g
    UNION ALL SELECT 'seller', 's', g FROM generate_series(1, $2) g
    UNION ALL SELECT 'courier', 'c', g FROM generate_series(1, $3) g
), ins AS (
    INSERT INTO market.users (email, password_hash, first_name, last_name, role,
                              email_verified, status)
    SELECT 'lt-' || $4 || '-' || k || n || '@' || $5, $6, initcap(role), 'No' || n,
           role::market.user_role_enum, true, 'active'
      FROM wanted
    RETURNING id, email, role::text AS role
)
SELECT ins.id, ins.email, ins.role, w.n
  FROM ins JOIN wanted w ON ins.email = 'lt-' || $4 || '-' || w.k || w.n || '@' || $5
"""

_ADDRESSES = """
INSERT INTO market.user_addresses (user_id, type, full_name, phone, country, city, street,
                                   latitude, longitude, is_default)
SELECT id, 'delivery', 'Buyer ' || n, '+99890' || lpad(n::text, 7, '0'), 'Uzbekistan',
       'Tashkent', 'Load-test street ' || n, $1 + (n % 100) * 0.0005, $2 + (n % 97) * 0.0005, true
  FROM lt_mk_users WHERE role = 'buyer'
"""

_CATEGORY = """
INSERT INTO market.categories (name, slug) VALUES ('Load test ' || $1, 'lt-' || $1) RETURNING id
"""

_PRODUCTS = """
CREATE TEMP TABLE lt_mk_products AS
WITH ins AS (
    INSERT INTO market.products (seller_id, category_id, name, slug, description, base_price,
                                 stock_quantity, status)
    SELECT s.id, $1, 'Load-test item ' || s.n || '-' || g, 'lt-' || $2 || '-' || s.n || '-' || g,
           'A seeded product of seller ' || s.n, 10000 + 1000 * g, 1000, 'active'
      FROM lt_mk_users s CROSS JOIN generate_series(1, $3) g
     WHERE s.role = 'seller'
    RETURNING id, seller_id, base_price
)
SELECT DISTINCT ON (seller_id) id, seller_id, base_price FROM ins ORDER BY seller_id, id
"""

_ORDERS = """
CREATE TEMP TABLE lt_mk_orders AS
WITH plan AS (
    SELECT g AS n, b.id AS buyer_id, s.id AS seller_id, c.id AS courier_id, p.id AS product_id,
           p.base_price, a.id AS address_id
      FROM generate_series(1, $1) g
      JOIN lt_mk_users b ON b.role = 'buyer' AND b.n = 1 + (g - 1) % $2
      JOIN lt_mk_users s ON s.role = 'seller' AND s.n = 1 + (g - 1) % $3
      JOIN lt_mk_users c ON c.role = 'courier' AND c.n = 1 + (g - 1) % $4
      JOIN lt_mk_products p ON p.seller_id = s.id
      JOIN market.user_addresses a ON a.user_id = b.id
), ins AS (
    INSERT INTO market.orders (order_number, buyer_id, seller_id, courier_id, status,
                               payment_method, subtotal, total_amount, delivery_address_id)
    SELECT 'LT-' || $5 || '-' || n, buyer_id, seller_id, courier_id, 'in_transit', 'cash',
           base_price, base_price, address_id
      FROM plan
    RETURNING id, order_number
)
SELECT ins.id, plan.* FROM ins JOIN plan ON ins.order_number = 'LT-' || $5 || '-' || plan.n
"""

_ORDER_ITEMS = """
INSERT INTO market.order_items (order_id, product_id, product_name, quantity, unit_price,
                                subtotal)
SELECT o.id, o.product_id, 'Load-test item', 1, o.base_price, o.base_price FROM lt_mk_orders o
"""

_TRACKING = """
INSERT INTO market.order_tracking (order_id, courier_id, status, latitude, longitude)
SELECT id, courier_id, 'in_transit', $1 + (n % 101) * 0.0004, $2 + (n % 89) * 0.0004
  FROM lt_mk_orders
"""

_CHATS = """
CREATE TEMP TABLE lt_mk_chats AS
WITH plan AS (
    SELECT g AS n, b.id AS buyer_id, s.id AS seller_id
      FROM generate_series(1, $1) g
      JOIN lt_mk_users b ON b.role = 'buyer' AND b.n = g
      JOIN lt_mk_users s ON s.role = 'seller' AND s.n = 1 + (g - 1) % $2
), ins AS (
    INSERT INTO market.chats (type, created_by) SELECT 'direct', buyer_id FROM plan ORDER BY n
    RETURNING id, created_by
)
SELECT ins.id, plan.* FROM ins JOIN plan ON plan.buyer_id = ins.created_by
"""

_PARTICIPANTS = """
INSERT INTO market.chat_participants (chat_id, user_id, role)
SELECT id, buyer_id, 'member'::market.chat_role_enum FROM lt_mk_chats
UNION ALL SELECT id, seller_id, 'member' FROM lt_mk_chats
"""

_READ_ALL = """
UPDATE market.chat_participants p SET last_read_seq = 2, last_read_at = now()
  FROM lt_mk_chats c WHERE p.chat_id = c.id
"""

_CREDENTIALS = """
SELECT u.email, $1 AS password, u.role AS user_type, u.id AS user_id,
       concat_ws(' ',
           (SELECT string_agg('market.order:' || o.id, ' ' ORDER BY o.id) FROM lt_mk_orders o
             WHERE u.id IN (o.buyer_id, o.seller_id, o.courier_id)),
           (SELECT string_agg('market.chat:' || c.id, ' ' ORDER BY c.id) FROM lt_mk_chats c
             WHERE u.id IN (c.buyer_id, c.seller_id))) AS channels
  FROM lt_mk_users u
 ORDER BY CASE u.role WHEN 'courier' THEN 0 WHEN 'seller' THEN 1 ELSE 2 END, u.n
"""


_INSERT_MESSAGES = """
INSERT INTO market.messages (chat_id, sender_id, type, content)
SELECT c.id, m.sender, 'text', m.content
  FROM lt_mk_chats c
 CROSS JOIN LATERAL (VALUES (1, c.buyer_id, 'Is this still available?'),
                            (2, c.seller_id, 'Yes, it ships today.')) AS m(k, sender, content)
 ORDER BY c.id, m.k
"""


async def _insert_messages(conn: asyncpg.Connection) -> int:
    return count(await conn.execute(_INSERT_MESSAGES))


async def seed(
    conn: asyncpg.Connection,
    config: MarketSeedConfig,
    out: Path | None = DEFAULT_OUT,
    say: Callable[[str], None] = lambda _m: None,
) -> MarketSeedReport:
    """Seed `config`'s population through `conn` in one transaction and write the
    credentials file to `out` (None: no file)."""
    config.check()
    report = MarketSeedReport(tag=config.tag)
    async with SeedRun(conn, config, report, say, _TEMP_TABLES, width=12) as run:
        async with run.transaction():
            await conn.execute(
                _USERS,
                config.buyers,
                config.sellers,
                config.couriers,
                config.tag,
                config.domain,
                run.password_hash,
            )
            await conn.execute(_ADDRESSES, *ORIGIN)
            report.buyers, report.sellers = config.buyers, config.sellers
            report.couriers = config.couriers
            run.step("users", f"{config.buyers + config.sellers + config.couriers:,} users")
            category = await conn.fetchval(_CATEGORY, config.tag)
            await conn.execute(_PRODUCTS, category, config.tag, config.products)
            report.products = config.sellers * config.products
            run.step("products", f"{report.products:,} active products")
            await conn.execute(
                _ORDERS, config.orders, config.buyers, config.sellers, config.couriers, config.tag
            )
            report.orders = count(await conn.execute(_ORDER_ITEMS))
            await conn.execute(_TRACKING, *ORIGIN)
            run.step("orders", f"{report.orders:,} in transit with a courier")
            await conn.execute(_CHATS, config.chats, config.sellers)
            report.chats = count(await conn.execute(_PARTICIPANTS)) // 2
            report.messages = await _insert_messages(conn)
            await conn.execute(_READ_ALL)
            run.step("chats", f"{report.chats:,} direct chats, {report.messages:,} messages")
        await run.analyze(
            "market.users, market.products, market.orders, market.order_tracking,"
            " market.chats, market.chat_participants, market.messages"
        )
        report.credentials = await run.write_credentials(_CREDENTIALS, out, config.password)
    return report


def _parse(command: SeedCommand, argv: list[str] | None) -> tuple[MarketSeedConfig, Path]:
    parser = command.parser
    defaults = MarketSeedConfig()
    for name in ("buyers", "sellers", "couriers", "products", "orders", "chats"):
        parser.add_argument(
            f"--{name}", type=int, default=getattr(defaults, name), help="(default %(default)s)"
        )
    command.add_login_arguments(rounds_help="cost of the one hash")
    command.add_run_arguments()
    return command.parse(MarketSeedConfig, DEFAULT_OUT, argv)


def _summary(report: MarketSeedReport) -> list[str]:
    return [f"tag {report.tag}: done in {report.seconds:.1f} s"]


def main(argv: list[str] | None = None) -> None:
    command = SeedCommand("seed_market", __doc__)
    config, out = _parse(command, argv)
    command.run("market.orders", seed, config, out, None, _summary)


if __name__ == "__main__":
    main()
