"""Syndication: the outbox of golden-record changes delivered to each subscriber (a snapshot
first, then every change in order, at least once), and erasure. Pure Python over the hub;
nothing here knows Dagster.

This is syndication's face: assets, sensors, the CLI, tests and benchmarks import from here.
Behind it: what each subscriber is sent (``messages``), where it goes (``transports``), the
delivery loop and its ledger (``delivery``), the events a subscriber refused for good and those
held behind them (``dead_letters``), a range of the outbox sent again (``replay``), and erasure
(``erasure``).
"""

from mdm_orchestration.syndication.dead_letters import (
    DeadLetter,
    dead_letter_counts,
    drop_dead_letters,
    list_dead_letters,
    retry_dead_letters,
)
from mdm_orchestration.syndication.delivery import (
    DeliveryResult,
    SubscriberFailing,
    ensure_state,
    pending_for,
    subscriber_status,
    syndicate,
)
from mdm_orchestration.syndication.erasure import (
    ErasureResult,
    NothingToErase,
    ReplayResult,
    erase,
    erased_record_ids,
    erasure_ledger_path,
    read_ledger,
    replay_erasures,
)
from mdm_orchestration.syndication.messages import (
    GoldenVersion,
    Held,
    Message,
    OutboxEvent,
    business_event_id,
    decide,
    expand,
    subscribed_attributes,
    why_not,
)
from mdm_orchestration.syndication.replay import ReplayRange, replay_range
from mdm_orchestration.syndication.transports import DeliveryError, Transport, make_transport

__all__ = [
    "DeadLetter",
    "DeliveryError",
    "DeliveryResult",
    "ErasureResult",
    "GoldenVersion",
    "Held",
    "Message",
    "NothingToErase",
    "OutboxEvent",
    "ReplayRange",
    "ReplayResult",
    "SubscriberFailing",
    "Transport",
    "business_event_id",
    "dead_letter_counts",
    "decide",
    "drop_dead_letters",
    "ensure_state",
    "erase",
    "erased_record_ids",
    "erasure_ledger_path",
    "expand",
    "list_dead_letters",
    "make_transport",
    "pending_for",
    "read_ledger",
    "replay_erasures",
    "replay_range",
    "retry_dead_letters",
    "subscribed_attributes",
    "subscriber_status",
    "syndicate",
    "why_not",
]
