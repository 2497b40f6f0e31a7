"""First start: data directory, PKI (server TLS, device CA, manufacturer CA), database at head,
the platform account and its first administrator, platform settings (LCK-1) and the
device-family catalog (FW-1)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from server.context import ServerContext, system_clock
from server.domain import accounts as account_rules
from server.domain import passwords
from server.domain.errors import DomainError
from server.store.db import Store
from server.store.models import Account, DeviceFamily, Setting, User
from server.store.pools import PoolSizes

ADMIN_LOGIN = "admin"
DEFAULT_SETTINGS = {"lockout": {"attempts": 3, "minutes": 30}}


@dataclass
class Opened:
    ctx: ServerContext
    first_password: str | None  # printed once when the server generated it


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir.resolve() / 'enrollab.db'}"


def prepare_data_dir(data_dir: Path) -> Path:
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise DomainError("data-dir", f"cannot create the data directory {data_dir}: {exc.strerror}", 400) from None
    if not os.access(data_dir, os.W_OK):
        raise DomainError("data-dir", f"the data directory {data_dir} is not writable", 400)
    return data_dir


async def open_server(
    data_dir: Path,
    db_url: str | None = None,
    *,
    admin_password: str | None = None,
    clock: Callable[[], datetime] = system_clock,
    name: str = "enrollab",
    hostnames: Sequence[str] | None = None,
    pools: PoolSizes | None = None,
) -> Opened:
    """Open (and on first start create) everything a server needs. `hostnames`: extra names of
    the server certificate (see `ensure_pki`; None keeps the current ones)."""
    from server.pki import ensure_pki

    prepare_data_dir(data_dir)
    # Before the database: a damaged PKI stops the start without touching anything else.
    pki = ensure_pki(data_dir, hostnames=hostnames)
    if os.environ.get("ENROLLAB_PASSWORD_HASH") == "test":
        passwords.use_test_profile()
    store = Store(db_url or default_db_url(data_dir), pools=pools)
    try:
        await store.migrate()
    except DomainError:
        raise
    except Exception as exc:  # unreachable database, wrong credentials: say so, no traceback
        await store.close()
        raise DomainError("db-unavailable", f"cannot open the database: {exc}", 400, store.url) from None
    ctx = ServerContext(store=store, data_dir=data_dir, clock=clock, name=name, pki=pki)
    first = await ensure_platform(
        ctx, admin_password if admin_password is not None else os.environ.get("ENROLLAB_ADMIN_PASSWORD")
    )
    return Opened(ctx, first)


async def ensure_platform(ctx: ServerContext, admin_password: str | None) -> str | None:
    """Create the platform account, `admin`, settings and catalog once; idempotent afterwards."""
    import fixtures
    from server.domain.firmware import Catalog

    async with ctx.store.transaction() as s:
        platform = await s.scalar(select(Account).where(Account.type == "platform"))
        first: str | None = None
        if platform is None:
            pid = account_rules.new_account_id()
            platform = Account(
                id=pid,
                type="platform",
                name="Platform",
                parent_id=None,
                path=f"/{pid}/",
                enabled=True,
                created_at=ctx.clock(),
            )
            s.add(platform)
            await s.flush()
        if await s.scalar(select(User).where(User.login == ADMIN_LOGIN)) is None:
            if admin_password:
                passwords.check_password_policy(admin_password)
                password, temporary = admin_password, False
            else:
                password, temporary = secrets.token_urlsafe(12), True
                first = password
            s.add(
                User(
                    account_id=platform.id,
                    login=ADMIN_LOGIN,
                    password_hash=passwords.hash_password(password),
                    password_temporary=temporary,
                    email="admin@localhost",
                    first_name="Platform",
                    last_name="Administrator",
                    created_at=ctx.clock(),
                )
            )
        for key, value in DEFAULT_SETTINGS.items():
            if await s.get(Setting, key) is None:
                s.add(Setting(key=key, value=value))
        if await s.scalar(select(DeviceFamily.model).limit(1)) is None:
            Catalog.load()  # validates the shipped catalog before it is copied into the store
            for model, data in fixtures.load_json("firmware-catalog.json")["models"].items():
                s.add(DeviceFamily(model=model, data=data))
    return first
