"""The autotuning results database (sqlite3, stdlib).

One file, ``$MLAGEN_TUNE_DB`` or ``<mlagen cache root>/tune.sqlite``, holds
*every* measured candidate of every ``mlagen tune`` run, not only the
winners: the plan, the median and all run times, the status (``ok``,
``compile_error``, ``wrong``, ``error``, ``timeout``, ``crash``) and the error
message. A measurement is valid for exactly one :class:`TuneKey` (spec key,
GPU name, SM count, CuTe DSL version, mlagen version, template hash) and one
shape :class:`~mlagen.dispatch.Bucket`; lookups ask for the current key, so
rows written by another toolchain are kept for ``mlagen tune --show`` but
never trusted.

Rows are committed one by one as they are measured (an interrupted run keeps
what it measured); the file is in WAL mode with a busy timeout, so several
tuning processes may write to it at once.

Schema (version :data:`SCHEMA_VERSION`)::

    schema_version(version INTEGER)
    measurements(
        id, spec_key, spec_json,
        s_q, batch, max_ctx,                               -- the bucket
        gpu_name, sm_count, cutedsl_version, mlagen_version, template_hash,
        plan_key,                                          -- canonical JSON of the full plan
        plan_json, is_heuristic,
        status, median_ms, times_ms (JSON list), error,
        shape_json (the measured problem), device, created (unix time),
        UNIQUE(spec_key, s_q, batch, max_ctx, gpu_name, sm_count,
               cutedsl_version, mlagen_version, template_hash, plan_key))
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from mlagen.dispatch import Bucket

__all__ = [
    "DB_ENV",
    "FAILED_STATUSES",
    "Measurement",
    "SCHEMA_VERSION",
    "STATUSES",
    "TuneDB",
    "TuneDBError",
    "TuneKey",
    "default_db_path",
    "plan_key",
    "toolchain",
    "tune_key",
]

DB_ENV = "MLAGEN_TUNE_DB"
SCHEMA_VERSION = 1
STATUSES = ("ok", "compile_error", "wrong", "error", "timeout", "crash")
FAILED_STATUSES = tuple(s for s in STATUSES if s != "ok")
_BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    spec_key TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    s_q INTEGER NOT NULL,
    batch INTEGER NOT NULL,
    max_ctx INTEGER NOT NULL,
    gpu_name TEXT NOT NULL,
    sm_count INTEGER NOT NULL,
    cutedsl_version TEXT NOT NULL,
    mlagen_version TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    plan_key TEXT NOT NULL,
    plan_json TEXT NOT NULL,
    is_heuristic INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    median_ms REAL,
    times_ms TEXT NOT NULL DEFAULT '[]',
    error TEXT NOT NULL DEFAULT '',
    shape_json TEXT NOT NULL DEFAULT '{}',
    device TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    UNIQUE (spec_key, s_q, batch, max_ctx, gpu_name, sm_count,
            cutedsl_version, mlagen_version, template_hash, plan_key)
);
CREATE INDEX IF NOT EXISTS measurements_by_key
    ON measurements (spec_key, gpu_name, sm_count, cutedsl_version, mlagen_version, template_hash);
"""

_KEY_COLUMNS = ("spec_key", "gpu_name", "sm_count", "cutedsl_version", "mlagen_version", "template_hash")


class TuneDBError(RuntimeError):
    """A tuning database that cannot be used (newer schema, not a database)."""


def default_db_path() -> Path:
    """``$MLAGEN_TUNE_DB``, else ``<mlagen cache root>/tune.sqlite``."""
    override = os.environ.get(DB_ENV)
    if override:
        return Path(override).expanduser()
    from mlagen.jit import cache_root

    return cache_root() / "tune.sqlite"


@lru_cache(maxsize=1)
def toolchain() -> tuple[str, str, str]:
    """``(cutedsl_version, mlagen_version, template_hash)`` of this process (computed once)."""
    from mlagen import __version__
    from mlagen.codegen import template_hash
    from mlagen.jit import cutedsl_version

    return cutedsl_version(), __version__, template_hash()


@dataclass(frozen=True)
class TuneKey:
    """What a measurement is valid for, besides its shape bucket."""

    spec_key: str
    gpu_name: str
    sm_count: int
    cutedsl_version: str
    mlagen_version: str
    template_hash: str

    def to_dict(self) -> dict:
        return asdict(self)

    def same_toolchain(self, other: "TuneKey") -> bool:
        return (self.cutedsl_version, self.mlagen_version, self.template_hash) == (
            other.cutedsl_version,
            other.mlagen_version,
            other.template_hash,
        )


def tune_key(spec, device_facts, chain: tuple[str, str, str] | None = None) -> TuneKey:
    """The key of ``spec`` on ``device_facts`` under the current (or given) toolchain."""
    cute_v, mlagen_v, thash = chain or toolchain()
    return TuneKey(spec.key, device_facts.name, int(device_facts.sm_count), cute_v, mlagen_v, thash)


def plan_key(plan) -> str:
    """Canonical JSON of a full plan (runtime knobs included): one candidate."""
    data = dict(plan if isinstance(plan, dict) else plan.to_dict())
    if not data.get("q_tokens"):
        data.pop("q_tokens", None)  # the spec's max_q, as rows written before the knob say by leaving it out
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


@dataclass
class Measurement:
    """One candidate (plan) measured, or failed, in one bucket."""

    bucket: Bucket
    plan: dict                      # KernelPlan.to_dict(), runtime knobs included
    status: str                     # one of STATUSES
    median_ms: float | None = None
    times_ms: list[float] = field(default_factory=list)
    error: str = ""
    is_heuristic: bool = False
    shape: dict = field(default_factory=dict)
    device: str = ""
    created: float = 0.0
    spec_key: str = ""              # filled when read back
    key: TuneKey | None = None      # filled when read back

    @property
    def plan_key(self) -> str:
        return plan_key(self.plan)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.median_ms is not None

    def to_dict(self) -> dict:
        d = {
            "bucket": self.bucket._asdict(),
            "plan": self.plan,
            "status": self.status,
            "median_ms": self.median_ms,
            "times_ms": self.times_ms,
            "error": self.error,
            "is_heuristic": self.is_heuristic,
            "shape": self.shape,
            "device": self.device,
            "created": self.created,
        }
        if self.key is not None:
            d["key"] = self.key.to_dict()
        return d


class TuneDB:
    """The results database at ``path`` (created on first write)."""

    def __init__(self, path: str | Path | None = None, *, readonly: bool = False):
        self.path = Path(path) if path is not None else default_db_path()
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None

    # -------------------------------------------------------------- connection
    def _connect(self) -> sqlite3.Connection | None:
        if self._conn is not None:
            return self._conn
        if self.readonly:
            if not self.path.exists():
                return None
            conn = None
            try:
                uri = self.path.resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S)
                conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
                self._check_version(conn, create=False)
            except sqlite3.Error as e:
                if conn is not None:
                    conn.close()
                raise TuneDBError(f"{self.path}: cannot read it as a tuning database ({e})") from None
            self._conn = conn
            return conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE) below
        conn = sqlite3.connect(str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            self._check_version(conn, create=True)
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            conn.close()
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                raise
            raise TuneDBError(f"{self.path}: not a tuning database ({e})") from None
        self._conn = conn
        return conn

    def _check_version(self, conn: sqlite3.Connection, *, create: bool) -> None:
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not has_table:
            if create:
                raise TuneDBError(f"{self.path}: schema_version table missing")
            raise sqlite3.DatabaseError("no schema_version table")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = row[0] if row else None
        if version is None:
            if not create:
                raise sqlite3.DatabaseError("empty schema_version table")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif version > SCHEMA_VERSION:
            raise TuneDBError(
                f"{self.path}: schema version {version} was written by a newer mlagen "
                f"(this one reads version {SCHEMA_VERSION}); use another --db"
            )
        # version < SCHEMA_VERSION: migrations go here when the schema changes

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "TuneDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ writes
    def record(self, key: TuneKey, spec_dict: dict, m: Measurement) -> None:
        """Insert (or replace) one measurement and commit it."""
        if self.readonly:
            raise TuneDBError(f"{self.path}: opened read-only")
        if m.status not in STATUSES:
            raise ValueError(f"status {m.status!r}: expected one of {STATUSES}")
        conn = self._connect()
        assert conn is not None
        b = m.bucket
        values = (
            key.spec_key,
            json.dumps(spec_dict, sort_keys=True),
            int(b.s_q),
            int(b.batch),
            int(b.max_ctx),
            key.gpu_name,
            int(key.sm_count),
            key.cutedsl_version,
            key.mlagen_version,
            key.template_hash,
            plan_key(m.plan),
            json.dumps(m.plan, sort_keys=True),
            int(bool(m.is_heuristic)),
            m.status,
            None if m.median_ms is None else float(m.median_ms),
            json.dumps([round(float(t), 5) for t in m.times_ms]),
            m.error or "",
            json.dumps(m.shape, sort_keys=True),
            m.device or "",
            m.created or time.time(),
        )
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT OR REPLACE INTO measurements (spec_key, spec_json, s_q, batch, max_ctx, gpu_name, sm_count, "
                "cutedsl_version, mlagen_version, template_hash, plan_key, plan_json, is_heuristic, status, "
                "median_ms, times_ms, error, shape_json, device, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------- reads
    def _select(self, where: str, params: Iterable) -> list[Measurement]:
        conn = self._connect()
        if conn is None:
            return []
        cur = conn.execute(
            "SELECT spec_key, s_q, batch, max_ctx, gpu_name, sm_count, cutedsl_version, mlagen_version, "
            "template_hash, plan_json, is_heuristic, status, median_ms, times_ms, error, shape_json, device, created "
            f"FROM measurements {where} ORDER BY s_q, batch, max_ctx, id",
            tuple(params),
        )
        out = []
        for row in cur.fetchall():
            key = TuneKey(row[0], row[4], row[5], row[6], row[7], row[8])
            out.append(
                Measurement(
                    bucket=Bucket(row[1], row[2], row[3]),
                    plan=json.loads(row[9]),
                    status=row[11],
                    median_ms=row[12],
                    times_ms=json.loads(row[13]),
                    error=row[14],
                    is_heuristic=bool(row[10]),
                    shape=json.loads(row[15]),
                    device=row[16],
                    created=row[17],
                    spec_key=row[0],
                    key=key,
                )
            )
        return out

    def measurements(self, key: TuneKey, buckets: Iterable[Bucket] | None = None) -> list[Measurement]:
        """Every row of ``key`` (optionally only those of ``buckets``)."""
        where = "WHERE " + " AND ".join(f"{c} = ?" for c in _KEY_COLUMNS)
        rows = self._select(where, (getattr(key, c) for c in _KEY_COLUMNS))
        if buckets is not None:
            wanted = set(buckets)
            rows = [r for r in rows if r.bucket in wanted]
        return rows

    def all_measurements(self, spec_key: str | None = None) -> list[Measurement]:
        """Every row, of every key (``--show``), optionally of one spec."""
        if spec_key is None:
            return self._select("", ())
        return self._select("WHERE spec_key = ?", (spec_key,))

    def measured(self, key: TuneKey, *, include_failed: bool = True) -> dict[tuple[Bucket, str], str]:
        """``{(bucket, plan_key): status}`` of what ``key`` already has (resume)."""
        out = {}
        for m in self.measurements(key):
            if m.ok or include_failed:
                out[(m.bucket, m.plan_key)] = m.status
        return out

    def best(self, key: TuneKey) -> dict[Bucket, Measurement]:
        """The fastest ``ok`` row per bucket of ``key``."""
        best: dict[Bucket, Measurement] = {}
        for m in self.measurements(key):
            if not m.ok:
                continue
            cur = best.get(m.bucket)
            if cur is None or m.median_ms < cur.median_ms:
                best[m.bucket] = m
        return best

    def spec_dict(self, spec_key: str) -> dict | None:
        conn = self._connect()
        if conn is None:
            return None
        row = conn.execute("SELECT spec_json FROM measurements WHERE spec_key = ? LIMIT 1", (spec_key,)).fetchone()
        return json.loads(row[0]) if row else None

    def schema_version(self) -> int | None:
        conn = self._connect()
        if conn is None:
            return None
        return conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
