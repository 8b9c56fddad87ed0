"""Hand out distinct GPU units to servers, recorded in the hub's database so a restart keeps them.

Each claim is one database transaction and the unit's uuid is the primary key, so two allocators on
the same database (or two threads of one) can never hand out the same unit: the second insert fails
and that claim is tried again against the new picture. On SQLite the transaction starts with
``BEGIN IMMEDIATE``, so claims are serialised outright rather than found out at insert time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from core.gpu.inventory import GpuUnit

logger = logging.getLogger(__name__)

TABLE_NAME = "titan_gpu_allocations"
_ATTEMPTS = 20
_T = TypeVar("_T")

metadata = MetaData()
allocations_table = Table(
    TABLE_NAME,
    metadata,
    Column("uuid", String(128), primary_key=True),
    Column("gpu_type", String(64), nullable=False),
    Column("owner", String(255), nullable=False, index=True),  # "alice/server-name"
    Column("container", String(255), nullable=True),
    Column("allocated_at", DateTime(timezone=True), nullable=False),
)


class GpuUnavailable(RuntimeError):
    """No (or not enough) GPU units of the requested type; the message is meant for the user."""


def docker_device_request(units: list[GpuUnit]) -> dict[str, Any]:
    """Keyword arguments for ``docker.types.DeviceRequest`` giving a container exactly ``units``."""
    if not units:
        raise ValueError("a GPU device request needs at least one GPU unit")
    return {"driver": "nvidia", "device_ids": [unit.uuid for unit in units], "capabilities": [["gpu"]]}


def gpu_label_value(units: list[GpuUnit]) -> str:
    """The ``titan.gpus`` label value for a container holding ``units``."""
    return ",".join(unit.uuid for unit in units)


def parse_gpu_label(value: str | None) -> list[str]:
    """The uuids in a ``titan.gpus`` label value (``None`` or empty: none)."""
    return [uuid.strip() for uuid in (value or "").split(",") if uuid.strip()]


def _plural(count: int, type_name: str) -> str:
    return f"{type_name} GPU" if count == 1 else f"{type_name} GPUs"


class GpuAllocator:
    """Distinct GPU units per owner (one owner is one server, e.g. ``"alice/server-name"``)."""

    def __init__(self, units_by_type: Mapping[str, list[GpuUnit]], engine: Engine,
                 log: logging.Logger | None = None) -> None:
        self._units_by_type = {name: list(units) for name, units in units_by_type.items()}
        self._type_of: dict[str, str] = {}
        self._unit: dict[str, GpuUnit] = {}
        for name, units in self._units_by_type.items():
            for unit in units:
                if unit.uuid in self._type_of:
                    raise ValueError(f"GPU {unit.uuid} is listed under both {self._type_of[unit.uuid]} "
                                     f"and {name}")
                self._type_of[unit.uuid] = name
                self._unit[unit.uuid] = unit
        self._engine = engine
        self._log = log or logger
        self._lock = threading.Lock()
        metadata.create_all(engine, tables=[allocations_table])

    # --- transactions ---------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            if self._engine.dialect.name == "sqlite":
                # Take the write lock before reading, so the free list read is still true at insert.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _run(self, work: Callable[[Connection], _T]) -> _T:
        """``work`` in one transaction, under the lock; again when another allocator got in first."""
        with self._lock:
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    with self._transaction() as conn:
                        return work(conn)
                except IntegrityError:  # another allocator claimed the same unit first
                    if attempt == _ATTEMPTS:
                        raise
                    self._log.debug("GPU claim collided with another allocator; retrying (%d)", attempt)
                except OperationalError as error:  # SQLite: database is locked / busy
                    text = str(error.orig).lower()
                    if attempt == _ATTEMPTS or ("locked" not in text and "busy" not in text):
                        raise
                    self._log.debug("GPU database busy; retrying (%d)", attempt)
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- queries --------------------------------------------------------------------------

    def total_count(self, gpu_type: str) -> int:
        return len(self._units_by_type.get(gpu_type, []))

    def free_count(self, gpu_type: str) -> int:
        uuids = [unit.uuid for unit in self._units_by_type.get(gpu_type, [])]
        if not uuids:
            return 0
        with self._engine.connect() as conn:
            taken = conn.execute(select(allocations_table.c.uuid)
                                 .where(allocations_table.c.uuid.in_(uuids))).scalars().all()
        return len(uuids) - len(taken)

    def allocations(self) -> dict[str, str]:
        """uuid → owner, for every unit held."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(allocations_table.c.uuid, allocations_table.c.owner)).all()
        return {uuid: owner for uuid, owner in rows}

    @property
    def types(self) -> list[str]:
        """The GPU types of this host's inventory (with no unit too, when a profile names them)."""
        return list(self._units_by_type)

    def type_of(self, uuid: str) -> str | None:
        """The type of a unit of this host's inventory; None for a uuid it does not have."""
        return self._type_of.get(uuid)

    def held_by(self, owner: str) -> list[GpuUnit]:
        """The units ``owner`` holds (that are still in the inventory)."""
        with self._engine.connect() as conn:
            uuids = conn.execute(select(allocations_table.c.uuid)
                                 .where(allocations_table.c.owner == owner)
                                 .order_by(allocations_table.c.allocated_at, allocations_table.c.uuid)
                                 ).scalars().all()
        return [self._unit[uuid] for uuid in uuids if uuid in self._unit]

    # --- changes --------------------------------------------------------------------------

    def allocate(self, gpu_type: str, count: int, owner: str) -> list[GpuUnit]:
        """Claim ``count`` distinct units of ``gpu_type`` for ``owner``; raises ``GpuUnavailable``.

        Idempotent: when ``owner`` already holds units of ``gpu_type`` (a restart), those are
        returned, topped up to ``count`` if it holds fewer.
        """
        if count < 1:
            raise ValueError(f"GPU count must be at least 1, not {count}")
        units = self._units_by_type.get(gpu_type, [])
        if not units:
            raise GpuUnavailable(f"This host has no {gpu_type} GPU.")
        if count > len(units):
            raise GpuUnavailable(f"This host has only {len(units)} {_plural(len(units), gpu_type)}, and "
                                 f"{count} were requested. Pick a profile with fewer GPUs.")
        table = allocations_table

        def claim(conn: Connection) -> list[GpuUnit]:
            held_uuids = conn.execute(select(table.c.uuid)
                                      .where(table.c.owner == owner, table.c.gpu_type == gpu_type)
                                      .order_by(table.c.allocated_at, table.c.uuid)).scalars().all()
            held = [self._unit[uuid] for uuid in held_uuids if uuid in self._unit]
            if len(held) >= count:
                return held
            taken = set(conn.execute(select(table.c.uuid)).scalars().all())
            free = [unit for unit in units if unit.uuid not in taken]
            need = count - len(held)
            if len(free) < need:
                lead = (f"No {gpu_type} GPU is free" if not free
                        else f"Not enough {gpu_type} GPUs are free")
                raise GpuUnavailable(f"{lead}: {len(free)} of {len(units)} free, {count} requested. "
                                     "Try again when another server stops, or pick another profile.")
            now = datetime.now(UTC)
            chosen = free[:need]
            conn.execute(insert(table), [{"uuid": unit.uuid, "gpu_type": gpu_type, "owner": owner,
                                          "container": None, "allocated_at": now} for unit in chosen])
            return held + chosen

        result = self._run(claim)
        self._log.info("GPU units for %s (%s × %d): %s", owner, gpu_type, count,
                       ", ".join(unit.uuid for unit in result))
        return result

    def release(self, owner: str) -> list[str]:
        """Free every unit ``owner`` holds; their uuids (none is fine)."""
        table = allocations_table

        def free(conn: Connection) -> list[str]:
            uuids = list(conn.execute(select(table.c.uuid).where(table.c.owner == owner)
                                      .order_by(table.c.allocated_at, table.c.uuid)).scalars().all())
            if uuids:
                conn.execute(delete(table).where(table.c.owner == owner))
            return uuids

        released = self._run(free)
        if released:
            self._log.info("GPU units released by %s: %s", owner, ", ".join(released))
        return released

    def attach(self, owner: str, container: str) -> None:
        """Record the container (name or id) that uses ``owner``'s units."""
        table = allocations_table

        def record(conn: Connection) -> int:
            return conn.execute(update(table).where(table.c.owner == owner)
                                .values(container=container)).rowcount

        if not self._run(record):
            self._log.debug("attach(%s, %s): %s holds no GPU unit", owner, container, owner)

    def reconcile(self, live_owners: Mapping[str, list[str]]) -> None:
        """Make the table match the containers really running, after a hub restart.

        ``live_owners`` maps each owner whose container runs to the uuids its ``titan.gpus`` label
        lists. Rows of owners with no live container, and rows of uuids no longer in the inventory,
        are dropped; a live container's units missing from the table are added (when the table says
        another owner holds such a unit, the running container's label wins).
        """
        table = allocations_table

        def rebuild(conn: Connection) -> None:
            rows = {uuid: owner for uuid, owner in conn.execute(select(table.c.uuid, table.c.owner)).all()}
            for uuid, owner in rows.items():
                if uuid not in self._type_of:
                    self._log.warning("GPU %s (held by %s) is no longer on this host; dropping it", uuid, owner)
                elif owner not in live_owners:
                    self._log.info("GPU %s was held by %s, whose container is gone; freeing it", uuid, owner)
                else:
                    continue
                conn.execute(delete(table).where(table.c.uuid == uuid))
            now = datetime.now(UTC)
            for owner, uuids in live_owners.items():
                for uuid in uuids:
                    if uuid not in self._type_of:
                        self._log.warning("Container of %s holds GPU %s, which is not on this host", owner, uuid)
                        continue
                    holder = rows.get(uuid)
                    if holder == owner:
                        continue
                    if holder is not None and holder in live_owners:
                        self._log.warning("GPU %s is recorded for %s but %s's container has it; "
                                          "recording it for %s", uuid, holder, owner, owner)
                        conn.execute(delete(table).where(table.c.uuid == uuid))
                    else:
                        self._log.info("Adopting GPU %s for the running container of %s", uuid, owner)
                    conn.execute(insert(table).values(uuid=uuid, gpu_type=self._type_of[uuid], owner=owner,
                                                      container=None, allocated_at=now))
                    rows[uuid] = owner

        self._run(rebuild)
