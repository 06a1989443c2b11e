"""The case store: one row per indexed image; the row id is the image's FAISS id.

Two backends share one schema (``images``) and one set of Alembic migrations
(``mammosearch/index/migrations``): **SQLite**, the embedded default, a ``cases.sqlite`` file
inside the index directory that a writer copies, changes and swaps in with the rest of the
directory; and **PostgreSQL**, one schema per index in a shared server, for several ``serve``
replicas and several writers at once.

Generations make a shared store safe to change while it is read. Every row records the
generation that added it (``added_gen``) and, once removed, the generation that removed it
(``removed_gen``). A store opened at generation ``g`` sees exactly the rows with
``added_gen <= g`` that were not removed at or before ``g``, so a reader of the published
index (generation ``g``, from its manifest) is not disturbed by a writer preparing ``g + 1``.
Rows of a generation that was never published (a writer that died) are rolled back by the next
writer; removed rows are deleted for good once the generation that removed them is published
(a patient's withdrawal leaves no copy behind), so a reader still on an older generation no
longer finds them: its searches skip them and may return fewer than ``k`` cases until it
reopens the index.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mammosearch.errors import IndexIntegrityError, InputError

__all__ = ["HEAD_REVISION", "HIT_COLUMNS", "SHOWN_SEPARATOR", "CaseRow", "CaseStore", "redact_url"]

logger = logging.getLogger(__name__)

HEAD_REVISION = "0002"
_MIGRATIONS = Path(__file__).parent / "migrations"
_CHUNK = 500
_MMAP = 1 << 30  # bytes of a read-only SQLite store mapped into memory (address space only)

_meta = sa.MetaData()
# The current schema, for queries; migrations/ creates and changes it (keep the two in step).
_images = sa.Table(
    "images",
    _meta,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("source_key", sa.Text, nullable=False, unique=True),
    sa.Column("case_id", sa.Text, nullable=False),
    sa.Column("patient_id", sa.Text, nullable=False),
    sa.Column("laterality", sa.Text),
    sa.Column("view", sa.Text),
    sa.Column("label", sa.Text),
    sa.Column("image_path", sa.Text, nullable=False),
    sa.Column("thumbnail", sa.Text, nullable=False),
    sa.Column("report_text", sa.Text),
    sa.Column("report_json", sa.Text),
    sa.Column("has_text_vector", sa.Integer, nullable=False, server_default="0"),
    sa.Column("added_gen", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("removed_gen", sa.BigInteger),
)
_COLUMNS = ("id", "source_key", "case_id", "patient_id", "laterality", "view", "label",
            "image_path", "thumbnail", "report_text", "report_json", "has_text_vector")  # fmt: skip
_LIGHT = ("report_text", "report_json")
# what a search result shows of a row (CaseStore.hit_rows)
HIT_COLUMNS = ("id", "case_id", "patient_id", "label", "laterality", "view", "thumbnail",
               "image_path", "report_json")  # fmt: skip
# the text columns CaseStore.shown_columns joins into one value, and what separates them
_SHOWN_JOINED = ("case_id", "patient_id", "thumbnail", "image_path")
SHOWN_SEPARATOR = "\x1f"  # ASCII unit separator


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One indexed image and what the index knows about it."""

    id: int
    source_key: str
    case_id: str
    patient_id: str
    laterality: str | None
    view: str | None
    label: str | None
    image_path: str
    thumbnail: str
    report_text: str | None
    report_json: str | None
    has_text_vector: bool

    @property
    def report(self) -> dict[str, Any] | None:
        """The normalized report JSON, parsed."""
        return json.loads(self.report_json) if self.report_json else None


def redact_url(url: str) -> str:
    """A store URL without its password (what manifests and messages may show)."""
    return sa.make_url(url).render_as_string(hide_password=True).replace(":***@", "@")


def _pg_url(url: str) -> sa.URL:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise InputError(
            f"unsupported case store {parsed.get_backend_name()!r}",
            fix="pass --store postgresql://USER@HOST:PORT/DATABASE (or leave it out for SQLite)",
        )
    try:
        import psycopg  # noqa: F401
    except ImportError as e:
        raise InputError(
            "the PostgreSQL driver is not installed",
            fix="pip install 'mammosearch[postgresql]'",
        ) from e
    return parsed.set(drivername="postgresql+psycopg")


class CaseStore:
    """The case store of one index, seen at one generation.

    Build one with :meth:`sqlite` or :meth:`postgresql`.

    Args:
        engine: The SQLAlchemy engine.
        generation: The generation this store sees (and, for a writer, writes).
        backend: ``"sqlite"`` or ``"postgresql"``.
        schema: The PostgreSQL schema of this index (``None`` for SQLite).
    """

    def __init__(
        self, engine: Engine, generation: int, backend: str, schema: str | None = None
    ) -> None:
        self.engine = engine
        self.generation = generation
        self.backend = backend
        self.schema = schema
        self._generations = True
        try:
            with self._connect() as conn:
                columns = {c["name"] for c in sa.inspect(conn).get_columns("images")}
        except IndexIntegrityError:
            self.close()
            raise
        # an index written before generations: every row is visible
        self._generations = "added_gen" in columns
        self._statements: dict[tuple[int, tuple[str, ...], bool], str] = {}
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        # a read-only SQLite store reads rows by id on a connection of each thread's own, not
        # one from the pool (its checkout cost as much as the query); :meth:`reopen` and
        # :meth:`close` replace ``_local``, whose connections then close
        self._own_connect: Callable[[], sqlite3.Connection] | None = None
        self._local = threading.local()

    @classmethod
    def sqlite(cls, path: Path, *, read_only: bool = False, generation: int = 0) -> CaseStore:
        """The ``cases.sqlite`` store at ``path`` (created and migrated unless ``read_only``)."""

        def connect() -> sqlite3.Connection:
            if read_only:
                # a published store file is never written again (a writer changes a copy and
                # swaps the directory), so SQLite may skip its locks and change checks
                conn = sqlite3.connect(
                    f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False
                )
                conn.execute(f"PRAGMA mmap_size={_MMAP}")  # pages read in place, not copied
                # so a page cache of its own would only hold copies (each thread has a
                # connection: this bounds what each costs)
                conn.execute("PRAGMA cache_size=-256")
                return conn
            return sqlite3.connect(path, check_same_thread=False)

        # a pool of connections (the threads of a server query at once)
        engine = sa.create_engine(
            "sqlite://", creator=connect, poolclass=sa.pool.QueuePool, hide_parameters=True
        )
        try:
            if not read_only:
                _migrate(engine, None)
        except sa.exc.SQLAlchemyError as e:
            engine.dispose()
            raise _cannot_open("the case store", e) from e
        store = cls(engine, generation, "sqlite")
        if read_only:
            store._own_connect = connect
        return store

    @classmethod
    def postgresql(
        cls, url: str, schema: str, *, generation: int = 0, create: bool = False
    ) -> CaseStore:
        """The store of one index in a PostgreSQL database (its own ``schema``).

        The password comes from the URL or, better, from libpq's ``PGPASSWORD`` or
        ``~/.pgpass``. ``create`` makes the schema and migrates it to the current revision.

        Raises:
            InputError: The URL is not a PostgreSQL URL, or the server cannot be reached.
            IndexIntegrityError: The schema is missing or at another revision.
        """
        engine = sa.create_engine(
            _pg_url(url),
            pool_pre_ping=True,
            hide_parameters=True,  # errors must not quote stored values (patient data)
            connect_args={"options": f"-csearch_path={schema}"},
        )
        try:
            if create:
                with engine.begin() as conn:
                    conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                _migrate(engine, schema)
            with engine.connect() as conn:
                revision = _revision(conn)
        except sa.exc.OperationalError as e:
            engine.dispose()
            raise InputError(
                f"the case store at {redact_url(url)} cannot be reached ({_reason(e)})",
                fix="check that PostgreSQL is running and the URL, user and password are right",
            ) from e
        except sa.exc.SQLAlchemyError as e:
            engine.dispose()
            raise _cannot_open(f"the case store schema {schema!r}", e) from e
        if revision != HEAD_REVISION:
            engine.dispose()
            raise IndexIntegrityError(
                f"the case store schema {schema!r} is at revision {revision}, not {HEAD_REVISION}",
                fix="run 'mammosearch index migrate DIR' with this version of mammosearch",
            )
        return cls(engine, generation, "postgresql", schema)

    @contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[Connection]:
        """A connection (in a transaction when ``write``); database errors become typed ones
        that name the kind of error only."""
        try:
            with self.engine.begin() if write else self.engine.connect() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as e:
            raise IndexIntegrityError(
                f"the case store failed ({_reason(e)})", fix="run 'mammosearch index verify'"
            ) from e

    def _visible(self) -> Any:
        """Rows this store's generation sees."""
        if not self._generations:
            return sa.true()
        g = self.generation
        return sa.and_(
            _images.c.added_gen <= g,
            sa.or_(_images.c.removed_gen.is_(None), _images.c.removed_gen > g),
        )

    def close(self) -> None:
        """Close the connections."""
        self.engine.dispose()
        self._local = threading.local()

    def reopen(self) -> None:
        """Close the connections; the next queries open new ones (a SQLite store: the file now
        at its path, which a writer may have replaced)."""
        self.close()

    def revision(self) -> str | None:
        """The Alembic revision of the schema (``None`` before migrations were used)."""
        with self._connect() as conn:
            return _revision(conn)

    def add(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert rows (the dict keys are the columns without ``id``) in this store's
        generation; returns their ids."""
        ids: list[int] = []
        with self._connect(write=True) as conn:
            for row in rows:
                values = {c: row.get(c) for c in _COLUMNS[1:-1]}
                values["has_text_vector"] = int(bool(row.get("has_text_vector")))
                values["added_gen"] = self.generation
                result = conn.execute(_images.insert().values(**values))
                key = result.inserted_primary_key
                if key is None:  # pragma: no cover - both backends return the key
                    raise IndexIntegrityError("the case store did not return a row id")
                ids.append(int(key[0]))
        return ids

    def remove(self, ids: Iterable[int]) -> None:
        """Remove rows by id as of this generation (:meth:`purge` deletes them for good)."""
        wanted = [int(i) for i in ids]
        with self._connect(write=True) as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                conn.execute(
                    _images.update()
                    .where(_images.c.id.in_(chunk), _images.c.removed_gen.is_(None))
                    .values(removed_gen=self.generation)
                )

    def purge(self, published: int) -> int:
        """Delete rows removed at or before the ``published`` generation; returns how many."""
        with self._connect(write=True) as conn:
            done = conn.execute(_images.delete().where(_images.c.removed_gen <= published))
        return int(done.rowcount or 0)

    def roll_back_after(self, published: int) -> int:
        """Undo what writers that never published did after generation ``published``."""
        with self._connect(write=True) as conn:
            added = conn.execute(_images.delete().where(_images.c.added_gen > published))
            conn.execute(
                _images.update().where(_images.c.removed_gen > published).values(removed_gen=None)
            )
        return int(added.rowcount or 0)

    def drop(self) -> None:
        """Delete a PostgreSQL index's schema with everything in it (a build that failed)."""
        if self.backend == "postgresql":
            with self._connect(write=True) as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))

    def _ids(self, *where: Any, limit: int | None = None) -> list[int]:
        query = sa.select(_images.c.id).where(self._visible(), *where).order_by(_images.c.id)
        if limit is not None:
            query = query.limit(limit)
        with self._connect() as conn:
            return [int(r[0]) for r in conn.execute(query)]

    def ids_of_case(self, case_id: str) -> list[int]:
        """Row ids of one case."""
        return self._ids(_images.c.case_id == case_id)

    def ids_of_patient(self, patient_id: str) -> list[int]:
        """Row ids of one patient."""
        return self._ids(_images.c.patient_id == patient_id)

    def ids_where(
        self, *, laterality: str | None = None, view: str | None = None, label: str | None = None
    ) -> list[int]:
        """Row ids matching every given attribute."""
        pairs = (("laterality", laterality), ("view", view), ("label", label))
        return self._ids(*[_images.c[column] == value for column, value in pairs if value])

    def set_thumbnails(self, paths: dict[int, str]) -> None:
        """Record each row's thumbnail path."""
        if not paths:
            return
        with self._connect(write=True) as conn:
            conn.execute(
                _images.update().where(_images.c.id == sa.bindparam("row_id")),
                [{"row_id": i, "thumbnail": p} for i, p in paths.items()],
            )

    def source_keys(self) -> set[str]:
        """Keys of every indexed source (what ``--update`` skips)."""
        query = sa.select(_images.c.source_key).where(self._visible())
        with self._connect() as conn:
            return {str(r[0]) for r in conn.execute(query)}

    def ids(self, *, with_text: bool = False, limit: int | None = None) -> list[int]:
        """All row ids (or those with a text vector), ascending; the first ``limit`` only."""
        return self._ids(*([_images.c.has_text_vector == 1] if with_text else []), limit=limit)

    def _select(self, with_reports: bool) -> Any:
        return sa.select(
            *[
                sa.null().label(c) if c in _LIGHT and not with_reports else _images.c[c]
                for c in _COLUMNS
            ]
        ).where(self._visible())

    def get(self, ids: Sequence[int], *, with_reports: bool = True) -> dict[int, CaseRow]:
        """Rows by id (missing ids are absent); without reports, their texts are not read."""
        return {int(r[0]): _row(r) for r in self._by_id(ids, _COLUMNS, with_reports)}

    def hit_rows(self, ids: Sequence[int], *, with_reports: bool = True) -> list[Sequence[Any]]:
        """What a search result shows of rows by id: plain tuples of :data:`HIT_COLUMNS`
        (``report_json`` ``None`` without reports), in no particular order; missing ids are
        absent."""
        return self._by_id(ids, HIT_COLUMNS, with_reports)

    def _by_id(
        self, ids: Sequence[int], columns: tuple[str, ...], with_reports: bool
    ) -> list[Sequence[Any]]:
        """Rows by id, one statement per 500 ids, through the driver's own connection with SQL
        made once per id count (SQLAlchemy's statement building cost more than the query)."""
        wanted = [int(i) for i in ids]
        if not wanted:
            return []
        gens = [self.generation] * 2 if self._generations else []
        out: list[Sequence[Any]] = []
        try:
            if self._own_connect is not None:
                local = self._local
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = self._own_connect()
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    sql = self._by_id_sql(len(chunk), columns, with_reports)
                    out += conn.execute(sql, chunk + gens).fetchall()
                return out
            raw = self.engine.raw_connection()  # from the pool (checked by pre-ping there)
            try:
                cursor = raw.cursor()
                for start in range(0, len(wanted), _CHUNK):
                    chunk = wanted[start : start + _CHUNK]
                    cursor.execute(self._by_id_sql(len(chunk), columns, with_reports), chunk + gens)
                    out += cursor.fetchall()
                cursor.close()
            finally:
                raw.close()  # back to the pool, rolled back
        except (sa.exc.SQLAlchemyError, self._driver_error) as e:
            raise IndexIntegrityError(
                f"the case store failed ({_reason(e)})", fix="run 'mammosearch index verify'"
            ) from e
        return out

    def shown_columns(self) -> list[tuple[Any, ...]]:
        """Every visible row of a read-only SQLite store, by id, as what a search result shows
        of it without its report: ``(id, label, laterality, view, blob)`` with ``blob`` the
        UTF-8 bytes of ``case_id``, ``patient_id``, ``thumbnail`` and ``image_path`` joined by
        :data:`SHOWN_SEPARATOR` (``None`` where one of them is NULL).

        Raises:
            IndexIntegrityError: The store is not a read-only SQLite store, or it failed.
        """
        if self._own_connect is None:
            raise IndexIntegrityError("only a read-only SQLite store lists its shown columns")
        sep = f"char({ord(SHOWN_SEPARATOR)})"
        joined = f" || {sep} || ".join(f'"{c}"' for c in _SHOWN_JOINED)
        sql = f'SELECT "id", "label", "laterality", "view", CAST({joined} AS BLOB) FROM images'
        if self._generations:
            sql += " WHERE added_gen <= ? AND (removed_gen IS NULL OR removed_gen > ?)"
        gens = [self.generation] * 2 if self._generations else []
        try:
            conn = self._own_connect()  # a connection of its own, closed after this one read
            try:
                return conn.execute(sql + ' ORDER BY "id"', gens).fetchall()
            finally:
                conn.close()
        except self._driver_error as e:
            raise IndexIntegrityError(
                f"the case store failed ({_reason(e)})", fix="run 'mammosearch index verify'"
            ) from e

    def _by_id_sql(self, n: int, columns: tuple[str, ...], with_reports: bool) -> str:
        """The statement of :meth:`_by_id` for ``n`` ids, in the driver's parameter style."""
        key = (n, columns, with_reports)
        sql = self._statements.get(key)
        if sql is None:
            mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
            names = ", ".join(
                "NULL" if c in _LIGHT and not with_reports else f'"{c}"' for c in columns
            )
            sql = f'SELECT {names} FROM images WHERE "id" IN ({", ".join([mark] * n)})'
            if self._generations:
                sql += f" AND added_gen <= {mark} AND (removed_gen IS NULL OR removed_gen > {mark})"
            self._statements[key] = sql
        return sql

    def all_rows(self, *, with_reports: bool = True) -> list[CaseRow]:
        """Every row, by id (without reports, their texts are not read)."""
        query = self._select(with_reports).order_by(_images.c.id)
        with self._connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """What the index manifest counts, computed by the database (no row is read)."""
        c = _images.c
        query = sa.select(
            sa.func.count().label("images"),
            sa.func.count(sa.distinct(c.case_id)).label("cases"),
            sa.func.count(sa.distinct(c.patient_id)).label("patients"),
            sa.func.count(c.report_json).label("with_report"),
            sa.func.coalesce(sa.func.sum(c.has_text_vector), 0).label("text_vectors"),
            sa.func.count(c.label).label("labelled"),
        ).where(self._visible())
        with self._connect() as conn:
            return {k: int(v) for k, v in conn.execute(query).one()._mapping.items()}

    def count(self) -> int:
        """Number of indexed images."""
        query = sa.select(sa.func.count()).select_from(_images).where(self._visible())
        with self._connect() as conn:
            return int(conn.execute(query).scalar_one())

    def check(self) -> None:
        """The database's own consistency checks, and the schema revision.

        Raises:
            IndexIntegrityError: The database file is damaged or the schema is not current.
        """
        with self._connect() as conn:
            if self.backend == "sqlite":
                result = conn.exec_driver_sql("PRAGMA integrity_check").scalar_one()
                if result != "ok":
                    raise IndexIntegrityError(f"the case store is damaged ({result})")
            revision = _revision(conn)
        if revision not in (HEAD_REVISION, None):
            raise IndexIntegrityError(
                f"the case store is at schema revision {revision}, not {HEAD_REVISION}",
                fix="run 'mammosearch index migrate DIR' with this version of mammosearch",
            )

    def backup_to(self, path: Path) -> None:
        """Copy a SQLite store to ``path`` (consistent even while it is open)."""
        if self.backend != "sqlite":
            raise InputError("only a SQLite case store is copied with its index")
        raw = self.engine.raw_connection()
        target = sqlite3.connect(path)
        try:
            source = raw.driver_connection
            if not isinstance(source, sqlite3.Connection):  # pragma: no cover - sqlite3 always
                raise IndexIntegrityError("the SQLite case store has no sqlite3 connection")
            source.backup(target)
        finally:
            target.close()
            raw.close()

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold PostgreSQL's advisory lock of this index (one writer at a time publishes)."""
        if self.backend != "postgresql":
            yield
            return
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(hashtext(:s))"), {"s": self.schema})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:s))"), {"s": self.schema})
                conn.commit()


def _row(r: Sequence[Any]) -> CaseRow:
    return CaseRow(
        id=int(r[0]), source_key=r[1], case_id=r[2], patient_id=r[3], laterality=r[4], view=r[5],
        label=r[6], image_path=r[7], thumbnail=r[8], report_text=r[9], report_json=r[10],
        has_text_vector=bool(r[11]),
    )  # fmt: skip


def _reason(error: Exception) -> str:
    """The kind of a database error, never its message (which can quote stored values)."""
    return type(getattr(error, "orig", None) or error).__name__


def _cannot_open(what: str, error: Exception) -> IndexIntegrityError:
    return IndexIntegrityError(
        f"{what} cannot be opened ({_reason(error)})", fix="run 'mammosearch index verify'"
    )


def _revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    revision = MigrationContext.configure(conn).get_current_revision()
    return None if revision is None else str(revision)


def _migrate(engine: Engine, schema: str | None) -> None:
    """Bring the schema to the head revision (a store made before migrations is stamped)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        config.attributes["connection"] = conn
        if "images" in tables and "alembic_version" not in tables:
            command.stamp(config, "0001")  # the schema of format-1 indexes, before migrations
        command.upgrade(config, "head")
    logger.debug("case store schema %s at revision %s", schema or "(sqlite)", HEAD_REVISION)
