"""The class board: a teacher's class, the learners who joined it, and what they published, in a real database.

SQLAlchemy over SQLite by default (a file under ``PLAYGROUND_DATA_DIR``), PostgreSQL when
``PLAYGROUND_DATABASE_URL`` names one; the schema is versioned with Alembic's migrations
(the scripts in ``migrations/``), applied when a :class:`Board` opens (:func:`migrate`), so an upgrade keeps a class's data.

Every value is stored as data (bound parameters only); the teacher key is 192 random bits, kept only as its
SHA-256 and compared in constant time; every entry is bounded in size, per learner, per class and per minute.
An experiment's entry is its runs (:meth:`playground.training.report.ExperimentResult.to_json`), and the board
pools every learner's runs of the same preset and settings into one table with the report's own
:func:`playground.training.report.summarise`, so a class's forty seeds are read exactly as one learner's are.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import io
import json
import math
import os
import secrets
import statistics
import threading
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import orm

from playground import kernels as K
from playground.config import Limits, get_limits
from playground.training.report import ExperimentResult, Overlay, result_of, summarise

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a whiteboard
CODE_LENGTH = 6  # 32^6: about a billion codes
KINDS = ("training", "experiment", "kernel")
DATABASE_ENV = "PLAYGROUND_DATABASE_URL"
DATA_DIR_ENV = "PLAYGROUND_DATA_DIR"


class PerMinute:
    """At most ``most`` events a minute per visitor (this server's count); bounded in visitors."""

    def __init__(self, most: int, sentence: str):
        self.most, self.sentence = most, sentence
        self._times: dict[object, collections.deque] = {}
        self._lock = threading.Lock()

    def _recent(self, visitor, now: float) -> collections.deque:
        recent = self._times.setdefault(visitor, collections.deque())
        while recent and now - recent[0] > 60:
            recent.popleft()
        if len(self._times) > 10_000:  # bounded: the addresses quiet for a minute go
            for stale in [key for key, times in self._times.items() if not times or now - times[-1] > 60]:
                self._times.pop(stale, None)
        return recent

    def check(self, visitor) -> None:
        """Raise the sentence when the visitor has had ``most`` events in the last minute."""
        with self._lock:
            if len(self._recent(visitor, time.monotonic())) >= self.most:
                raise ValueError(self.sentence)

    def count(self, visitor) -> None:
        with self._lock:
            self._recent(visitor, time.monotonic()).append(time.monotonic())

    def take(self, visitor) -> None:
        """Check and count in one step (two events at once cannot both take the last place)."""
        with self._lock:
            recent = self._recent(visitor, time.monotonic())
            if len(recent) >= self.most:
                raise ValueError(self.sentence)
            recent.append(time.monotonic())


class Base(orm.DeclarativeBase):
    pass


class Class(Base):
    __tablename__ = "classes"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    code: orm.Mapped[str] = orm.mapped_column(sa.String(12), unique=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(200))
    key_hash: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    created: orm.Mapped[dt.datetime] = orm.mapped_column(sa.DateTime(timezone=True))
    expires: orm.Mapped[dt.datetime] = orm.mapped_column(sa.DateTime(timezone=True))
    closed: orm.Mapped[bool] = orm.mapped_column(default=False)


class Learner(Base):
    __tablename__ = "learners"
    __table_args__ = (sa.UniqueConstraint("class_id", "name"),)
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    class_id: orm.Mapped[int] = orm.mapped_column(sa.ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(200))
    joined: orm.Mapped[dt.datetime] = orm.mapped_column(sa.DateTime(timezone=True))


class Entry(Base):
    __tablename__ = "entries"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    class_id: orm.Mapped[int] = orm.mapped_column(sa.ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    learner_id: orm.Mapped[int] = orm.mapped_column(sa.ForeignKey("learners.id", ondelete="CASCADE"), index=True)
    kind: orm.Mapped[str] = orm.mapped_column(sa.String(20))
    group_key: orm.Mapped[str] = orm.mapped_column(sa.String(400), default="")  # what pools it with others
    payload: orm.Mapped[str] = orm.mapped_column(sa.Text)
    created: orm.Mapped[dt.datetime] = orm.mapped_column(sa.DateTime(timezone=True))
    hidden: orm.Mapped[bool] = orm.mapped_column(default=False)


def database_url() -> str:
    """``PLAYGROUND_DATABASE_URL``, else a SQLite file in ``PLAYGROUND_DATA_DIR`` (``/data`` on a Space with
    persistent storage, else a folder in the home directory)."""
    if os.environ.get(DATABASE_ENV):
        return os.environ[DATABASE_ENV]
    folder = Path(
        os.environ.get(DATA_DIR_ENV) or ("/data" if Path("/data").is_dir() else Path.home() / ".alexnet-playground")
    )
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'board.sqlite'}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)  # SQLite gives naive times back


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def _name(text, what: str, limits: Limits) -> str:
    text = " ".join(str(text or "").split())
    if not text or len(text) > limits.board_name_chars or not text.isprintable():
        raise ValueError(f"A {what} is 1 to {limits.board_name_chars} printable characters.")
    return text


UNREACHABLE = "The class board's database cannot be reached just now; please try again in a minute."


def _reached(method):
    """A database that is down or refuses the connection becomes a sentence (ValueError), never a traceback."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except sa.exc.DBAPIError as error:
            raise ValueError(UNREACHABLE) from error

    return wrapper


@dataclasses.dataclass(frozen=True)
class NewClass:
    code: str
    teacher_key: str  # shown once: the board keeps only its hash
    expires: dt.datetime


class Board:
    """One database of classes; safe to share between threads and between servers on one PostgreSQL."""

    @_reached
    def __init__(self, url: str | None = None, *, limits: Limits | None = None):
        self.url = url or database_url()
        self.limits = limits or get_limits()
        options = {"connect_args": {"timeout": 30}} if self.url.startswith("sqlite") else {"pool_pre_ping": True}
        self.engine = sa.create_engine(self.url, **options)
        if self.url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        migrate(self.engine)
        self._sessions = orm.sessionmaker(self.engine, expire_on_commit=False)
        most = self.limits.board_publishes_per_minute  # per learner, counted by this server
        self._publishes = PerMinute(most, f"At most {most} results a minute; please wait a moment.")

    # --- classes -----------------------------------------------------------------------------------------

    @_reached
    def create_class(self, name: str, *, days: int | None = None) -> NewClass:
        name = _name(name, "class name", self.limits)
        days = days or self.limits.board_class_days
        if not 1 <= days <= 365:
            raise ValueError("A class lives 1 to 365 days.")
        key = secrets.token_urlsafe(24)  # 192 bits
        for _ in range(10):
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            try:
                with self._sessions.begin() as db:
                    created = _now()
                    db.add(Class(code=code, name=name, key_hash=_hash(key), created=created,
                                 expires=created + dt.timedelta(days=days)))  # fmt: skip
                return NewClass(code, key, created + dt.timedelta(days=days))
            except sa.exc.IntegrityError:  # a code already taken: draw another
                continue
        raise ValueError("No free class code could be drawn; please try again.")

    def _open_class(self, db, code: str, *, closed_too: bool = False) -> Class:
        code = str(code or "").strip().upper()[:12]
        found = db.scalars(sa.select(Class).where(Class.code == code)).first()
        if found is None:
            raise ValueError(f"There is no class with the code {code!r}: check the code on the board.")
        if found.closed and not closed_too:
            raise ValueError(f"The class {found.name!r} has been closed by its teacher.")
        if _aware(found.expires) < _now():
            raise ValueError(f"The class {found.name!r} ended on {_aware(found.expires):%Y-%m-%d}.")
        return found

    def _teacher(self, db, code: str, key: str, *, closed_too: bool = False) -> Class:
        found = self._open_class(db, code, closed_too=closed_too)
        if not hmac.compare_digest(found.key_hash, _hash(str(key or ""))):
            raise ValueError("That teacher key does not open this class.")
        return found

    @_reached
    def close_class(self, code: str, teacher_key: str) -> None:
        with self._sessions.begin() as db:
            self._teacher(db, code, teacher_key).closed = True

    @_reached
    def join(self, code: str, learner: str) -> str:
        """Join a class as ``learner`` (joining again with the same name is the same learner); their name."""
        name = _name(learner, "display name", self.limits)
        try:
            with self._sessions.begin() as db:
                found = self._open_class(db, code)
                if self._learner(db, found, name) is not None:
                    return name
                count = db.scalar(sa.select(sa.func.count()).select_from(Learner).where(Learner.class_id == found.id))
                if count >= self.limits.board_learners_per_class:
                    raise ValueError(f"The class is full ({self.limits.board_learners_per_class} learners).")
                db.add(Learner(class_id=found.id, name=name, joined=_now()))
        except sa.exc.IntegrityError:  # the same name joined in the same instant from another page: one learner
            return name
        return name

    def _learner(self, db, found: Class, name: str) -> Learner | None:
        return db.scalars(sa.select(Learner).where(Learner.class_id == found.id, Learner.name == name)).first()

    # --- publishing --------------------------------------------------------------------------------------

    @_reached
    def publish(self, code: str, learner: str, kind: str, payload: dict) -> int:
        """Publish one entry (a training's summary, an experiment's runs, a kernel); its number.

        Raises:
            ValueError: an unknown class or learner, a closed class, a bad kind, too large, or too many.
        """
        if kind not in KINDS:
            raise ValueError(f"One publishes a {', a '.join(KINDS)}, not {str(kind)[:20]!r}.")
        group = ""
        if kind == "experiment":
            result = result_of(payload)  # every run checked, as a project file's are
            group = _group(result)
        elif kind == "kernel":
            payload = kernel_entry(payload)
        else:
            payload = training_entry(payload)
            group = json.dumps([payload["dataset"], payload["variant"], payload["mode"]])[:400]
        text = json.dumps(payload)
        if len(text) > self.limits.board_entry_bytes:
            raise ValueError(f"This result is too large to publish ({len(text) / 1024:,.0f} KB; at most "
                             f"{self.limits.board_entry_bytes / 1024:,.0f} KB).")  # fmt: skip
        name = _name(learner, "display name", self.limits)
        with self._sessions.begin() as db:
            found = self._open_class(db, code)
            who = self._learner(db, found, name)
            if who is None:
                raise ValueError(f"{name!r} has not joined this class: join it with its code first.")
            self._publishes.take(who.id)
            mine = db.scalar(sa.select(sa.func.count()).select_from(Entry).where(Entry.learner_id == who.id))
            if mine >= self.limits.board_entries_per_learner:
                raise ValueError(f"You have published {mine} results to this class, the most one learner may.")
            total = db.scalar(sa.select(sa.func.count()).select_from(Entry).where(Entry.class_id == found.id))
            if total >= self.limits.board_entries_per_class:
                raise ValueError("This class's board is full.")
            entry = Entry(
                class_id=found.id, learner_id=who.id, kind=kind, group_key=group, payload=text, created=_now()
            )
            db.add(entry)
            db.flush()
            return entry.id

    @_reached
    def hide(self, code: str, teacher_key: str, entry: int) -> None:
        with self._sessions.begin() as db:
            found = self._teacher(db, code, teacher_key)
            row = db.get(Entry, int(entry)) if str(entry).isdigit() else None
            if row is None or row.class_id != found.id:
                raise ValueError(f"This class has no entry {str(entry)[:12]!r}.")
            row.hidden = True

    # --- the board ---------------------------------------------------------------------------------------

    @_reached
    def version(self, code: str) -> str:
        """A value that changes whenever the board does (an entry published or hidden, a learner joined): a live
        page redraws only when it has changed. Raises as :meth:`board` does (a closed class says so)."""
        with self._sessions() as db:
            found = self._open_class(db, code)
            entries, newest, hidden = db.execute(
                sa.select(
                    sa.func.count(), sa.func.max(Entry.id), sa.func.sum(sa.case((Entry.hidden, 1), else_=0))
                ).where(Entry.class_id == found.id)
            ).one()
            learners = db.scalar(sa.select(sa.func.count()).select_from(Learner).where(Learner.class_id == found.id))
        return f"{found.code}:{entries}:{newest or 0}:{hidden or 0}:{learners}"

    @_reached
    def board(self, code: str, *, closed_too: bool = False) -> dict:
        """The class's board as JSON: its entries (hidden ones left out) and the pooled experiment tables
        (``closed_too``: a closed class's too, for its teacher's download)."""
        with self._sessions() as db:
            found = self._open_class(db, code, closed_too=closed_too)
            rows = db.execute(
                sa.select(Entry, Learner.name)
                .join(Learner, Entry.learner_id == Learner.id)
                .where(Entry.class_id == found.id, Entry.hidden.is_(False))
                .order_by(Entry.id)
            ).all()
            learners = db.scalar(sa.select(sa.func.count()).select_from(Learner).where(Learner.class_id == found.id))
        entries = [
            {"entry": e.id, "learner": name, "kind": e.kind, "published": _aware(e.created).isoformat(),
             "result": json.loads(e.payload)}
            for e, name in rows
        ]  # fmt: skip
        return {
            "class": found.name,
            "code": found.code,
            "closed": found.closed,
            "learners": learners,
            "ends": _aware(found.expires).isoformat(),
            "entries": entries,
            "pooled": pooled([e for e in entries if e["kind"] == "experiment"]),
            "trainings": spread([e for e in entries if e["kind"] == "training"]),
        }

    @_reached
    def export(self, code: str, teacher_key: str, form: str = "json") -> str:
        """The teacher's download of the whole board: JSON (everything) or CSV (a row per entry, and for an
        experiment a row per run and seed)."""
        with self._sessions() as db:
            self._teacher(db, code, teacher_key, closed_too=True)  # a closed class's teacher keeps the download
        shown = self.board(code, closed_too=True)
        if form == "json":
            return json.dumps(shown, indent=2)
        if form != "csv":
            raise ValueError("The board downloads as json or csv.")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["entry", "learner", "kind", "published", "what", "seed", "val_accuracy", "settings"])
        for e in shown["entries"]:
            result = e["result"]
            if e["kind"] == "experiment":
                for run in result["runs"]:
                    writer.writerow([e["entry"], e["learner"], "experiment", e["published"],
                                     f"{result['experiment']}: {run['label']}", run["seed"], run["val_accuracy"],
                                     json.dumps(run["settings"], sort_keys=True)])  # fmt: skip
            elif e["kind"] == "training":
                writer.writerow([e["entry"], e["learner"], "training", e["published"],
                                 f"{result['variant']} {result['mode']} on {result['dataset']}", "",
                                 result["val_accuracy"], ""])  # fmt: skip
            else:
                writer.writerow([e["entry"], e["learner"], "kernel", e["published"], result["name"], "", "",
                                 json.dumps(result["kernel"])])  # fmt: skip
        return buffer.getvalue()


def _group(result: ExperimentResult) -> str:
    """What pools experiments: the same preset (title) and the same runs (labels with their settings)."""
    runs = sorted({(o.label, json.dumps(o.settings, sort_keys=True)) for o in result.outcomes})
    return json.dumps([result.title, result.target.error, result.target.on, runs])[:400]


def _pools(entries: list[dict]) -> list[list[tuple[str, ExperimentResult]]]:
    """Experiment entries grouped by preset and settings: each group's (learner, result) pairs."""
    from playground.training.experiments import PRESETS

    groups: dict[str, list[tuple[str, ExperimentResult]]] = {}
    for entry in entries:
        result = result_of(entry["result"], PRESETS.values())
        groups.setdefault(_group(result), []).append((entry["learner"], result))
    return list(groups.values())


def pooled(entries: list[dict]) -> list[dict]:
    """Every learner's runs of the same experiment and settings in one table (the report's own summary over all
    the class's seeds), with how many learners and seeds went in."""
    from playground.training.experiments import PRESETS

    tables = []
    for members in _pools(entries):
        first = members[0][1]
        outcomes = [o for _, r in members for o in r.outcomes]  # every learner's seeds, as one experiment's
        labels = list(dict.fromkeys(o.label for o in outcomes))
        preset = next((p for p in PRESETS.values() if p.title == first.title), None)
        # Each run's own "stayed at chance" sentence is its learner's to read; the class reads how many did.
        quiet = [dataclasses.replace(o, at_chance="") for o in outcomes]
        summary = summarise(preset, labels, quiet, first.target, dataset_name=", ".join(sorted({r.dataset for _, r in members})),
                            planned=len(outcomes), capped=False, seconds=sum(r.seconds for _, r in members))  # fmt: skip
        stuck = {label: sum(1 for o in outcomes if o.label == label and o.at_chance) for label in labels}
        at_chance = [
            f"{label}: {count} of {sum(1 for o in outcomes if o.label == label)} runs stayed at chance (each "
            "learner's own Experiments tab says why and what to change)."
            for label, count in stuck.items() if count
        ]  # fmt: skip
        tables.append({
            "experiment": first.title,
            "learners": len({name for name, _ in members}),
            "entries": len(members),
            "seeds": len(outcomes),
            "table": summary.table(),
            "notes": [*summary.notes, *at_chance],
            "theirs": summary.theirs,
        })  # fmt: skip
    return tables


def pooled_curves(entries: list[dict]) -> list[Overlay]:
    """For each pooled table (in :func:`pooled`'s order), every learner's runs overlaid on one figure."""
    figures = []
    for members in _pools(entries):
        first, outcomes = members[0][1], [o for _, r in members for o in r.outcomes]
        learners = len({name for name, _ in members})
        plot = Overlay(list(dict.fromkeys(o.label for o in outcomes)), first.target,
                       f"{first.title}: {learners} learner{'s' * (learners != 1)}, {len(outcomes)} runs")  # fmt: skip
        for n, run in enumerate(outcomes):  # learners' seeds repeat (0, 1, ...): each run its own line
            plot.settle(dataclasses.replace(run, seed=n))
        figures.append(plot)
    return figures


def kernel_entry(payload) -> dict:
    """A kernel as the board keeps it: its name and its numbers (at most 11 x 11, finite), nothing else."""
    if not isinstance(payload, dict):
        raise ValueError("A kernel is published as its name and its rows of numbers.")
    rows = payload.get("kernel")
    if (
        not isinstance(rows, list)
        or not 1 <= len(rows) <= 11
        or not all(isinstance(row, list) and len(row) == len(rows[0]) and 1 <= len(row) <= 11 for row in rows)
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for row in rows for v in row
        )
    ):
        raise ValueError("A kernel is 1 x 1 to 11 x 11 rows of finite numbers, every row as long.")
    name = str(payload.get("name") or "custom")[:60]
    numbers = [[float(v) for v in row] for row in rows]
    if name not in K.KERNELS:  # typed in the editor: a classic kernel's numbers are still that kernel
        name = next((n for n, k in K.KERNELS.items() if k.weights.tolist() == numbers), "custom")
    return {"name": name, "kernel": numbers}


def training_entry(payload) -> dict:
    """A training's summary as a project file keeps it (:func:`playground.sharing.project.training_summary`),
    every number checked."""
    from playground.sharing.project import checked_training

    return checked_training(payload)


def spread(entries: list[dict]) -> list[dict]:
    """Fine-tuning accuracies by setting (dataset, model, mode): how many, their mean, spread and range."""
    groups: dict[tuple, list[float]] = {}
    for entry in entries:
        r = entry["result"]
        groups.setdefault((r["dataset"], r["variant"], r["mode"]), []).append(r["val_accuracy"])
    return [
        {"dataset": d, "model": v, "mode": m, "trainings": len(a), "mean": statistics.mean(a),
         "spread": statistics.stdev(a) if len(a) > 1 else None, "lowest": min(a), "highest": max(a)}
        for (d, v, m), a in groups.items()
    ]  # fmt: skip


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
    cursor.execute("PRAGMA busy_timeout=30000")  # forty learners publishing at once take turns, none is lost
    cursor.close()


# --- the schema's versions ----------------------------------------------------------------------------------

MIGRATIONS = Path(__file__).resolve().parent / "migrations"  # Alembic's scripts (a folder, not a package)
LOCK = 0x616C65786E6574  # PostgreSQL's advisory lock for migrating: two servers starting together take turns


def _alembic(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the database's schema to ``revision`` (the newest by default)."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK})
        command.upgrade(_alembic(connection), revision)


def schema_version(engine: sa.Engine) -> str | None:
    """The revision the database is at (None: no schema yet)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
