"""The log: event catalogue, codec, stores (DESIGN §3).

Every state change of a run is an event appended here; nothing is ever updated or
deleted. Everything else in smithers is a fold of this log.
"""

from __future__ import annotations

from . import events as events
from ._chain import ZERO_HASH as ZERO_HASH
from ._chain import ChainBreak as ChainBreak
from ._chain import chain_hash as chain_hash
from ._chain import chain_origin as chain_origin
from ._chain import verify_chain as verify_chain
from ._codec import EVENT_TYPES as EVENT_TYPES
from ._codec import MAX_JSON_DEPTH as MAX_JSON_DEPTH
from ._codec import JsonValueError as JsonValueError
from ._codec import decode_event as decode_event
from ._codec import decode_json as decode_json
from ._codec import encode_event as encode_event
from ._codec import encode_json as encode_json
from ._codec import encode_json_strict as encode_json_strict
from ._codec import to_raw as to_raw
from ._envelope import Lease as Lease
from ._envelope import RunRecord as RunRecord
from ._envelope import StoredEvent as StoredEvent
from ._locate import resolve_db as resolve_db
from ._locate import resolve_db_path as resolve_db_path
from ._memory import MemoryEventStore as MemoryEventStore
from ._open import open_store as open_store
from ._open import wait_for_append as wait_for_append
from ._postgres import PostgresEventStore as PostgresEventStore
from ._postgres_queue import queue_claim_lock as queue_claim_lock
from ._postgres_queue import release_run_claim as release_run_claim
from ._postgres_queue import try_run_claim as try_run_claim
from ._postgres_sql import PG_SCHEMA_VERSION as PG_SCHEMA_VERSION
from ._postgres_sql import MigrationRequiredError as MigrationRequiredError
from ._postgres_sql import is_postgres_url as is_postgres_url
from ._postgres_sql import redact_url as redact_url
from ._protocol import EventStore as EventStore
from ._sqlite import SQLiteEventStore as SQLiteEventStore
from ._sqlite_bulk import BulkDeletion as BulkDeletion
from ._sqlite_bulk import BulkRun as BulkRun
from ._workers import WorkerRecord as WorkerRecord
from .errors import DatabaseQueryError as DatabaseQueryError
from .errors import DatabaseWriteError as DatabaseWriteError
from .errors import EventStoreError as EventStoreError
from .errors import ForeignDatabaseError as ForeignDatabaseError
from .errors import RunAlreadyExistsError as RunAlreadyExistsError
from .errors import SeqConflictError as SeqConflictError
from .errors import SmithersError as SmithersError

__all__ = (
    "EVENT_TYPES",
    "BulkDeletion",
    "BulkRun",
    "ZERO_HASH",
    "ChainBreak",
    "DatabaseQueryError",
    "DatabaseWriteError",
    "EventStore",
    "EventStoreError",
    "ForeignDatabaseError",
    "JsonValueError",
    "MAX_JSON_DEPTH",
    "Lease",
    "MemoryEventStore",
    "MigrationRequiredError",
    "PG_SCHEMA_VERSION",
    "PostgresEventStore",
    "RunAlreadyExistsError",
    "RunRecord",
    "SQLiteEventStore",
    "SmithersError",
    "WorkerRecord",
    "StoredEvent",
    "SeqConflictError",
    "chain_hash",
    "chain_origin",
    "decode_event",
    "decode_json",
    "encode_event",
    "encode_json",
    "encode_json_strict",
    "events",
    "is_postgres_url",
    "open_store",
    "queue_claim_lock",
    "redact_url",
    "release_run_claim",
    "resolve_db",
    "resolve_db_path",
    "to_raw",
    "try_run_claim",
    "verify_chain",
    "wait_for_append",
)
