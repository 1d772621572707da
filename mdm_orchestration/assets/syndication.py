"""Syndication: golden-record changes delivered to each subscriber (one partition each)."""

import dagster as dg

from mdm_orchestration.assets.errors import customer_safe_errors
from mdm_orchestration.assets.pace import stopwatch
from mdm_orchestration.partitions import subscribers
from mdm_orchestration.resources import HubDatabase, LandingZone
from mdm_orchestration.syndication import SubscriberFailing, subscriber_status, syndicate

LAG = "subscriber_lag_within_limit"
DEAD_LETTERS = "no_dead_letters"


#: The columns of the ``subscribers`` table: every subscriber's state.
_LAG_COLUMNS = [
    dg.TableColumn("subscriber", "string"),
    dg.TableColumn("status", "string"),
    dg.TableColumn("pending_events", "int"),
    dg.TableColumn("delivered", "int"),
    dg.TableColumn("failing_since", "string"),
]


def _lag_table(status: dict) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "subscriber": name,
                    "status": s["status"],
                    "pending_events": s["pending"],
                    "delivered": s["delivered_total"],
                    "failing_since": s["failing_since"] or "",
                }
            )
            for name, s in status.items()
        ],
        schema=dg.TableSchema(columns=_LAG_COLUMNS),
    )


@dg.asset(
    # After the households refresh: it records each new version's household for the messages.
    deps=["golden_changes", "households"],
    partitions_def=subscribers,
    group_name="syndication",
    kinds={"python", "sql"},
    owners=["team:mdm"],
    tags={"stage": "syndication"},
    # It writes the hub (the delivery ledger, the cursor, dead letters): one writer at a time.
    pool="hub_writer",
    check_specs=[
        dg.AssetCheckSpec(
            LAG,
            asset="subscriber_deliveries",
            description="The subscriber is not failing and no more than its "
            "max_lag_events outbox events wait for it.",
        ),
        dg.AssetCheckSpec(
            DEAD_LETTERS,
            asset="subscriber_deliveries",
            description="No event is dead-lettered for the subscriber (refused for good after "
            "dead_letter_after tries; its golden record's later events are held behind it): "
            "see `mdm syndicate dlq list`, then retry or drop.",
        ),
    ],
)
@customer_safe_errors
def subscriber_deliveries(
    context: dg.AssetExecutionContext, hub: HubDatabase, landing: LandingZone
):  # type: ignore[no-untyped-def]
    """Golden-record changes delivered to one subscriber of subscriptions.yaml (the partition):
    a snapshot first, then every change in order, cut to its attributes, filtered by party
    type, lifecycle, sources and consent; removals when it may no longer hold a record; erasure
    notices. At least once, with stable event ids; a failing target is retried with backoff,
    then marked failing (a failed run and a failed check) and resumed where it stopped. An
    event the target refuses for good is dead-lettered after ``dead_letter_after`` tries, the
    golden record's later events held behind it, the rest delivered: the run succeeds and the
    ``no_dead_letters`` check fails (ERROR) until the dead letters are retried or dropped."""
    config = landing.hub_config()
    name = context.partition_key
    if name not in config.subscriptions.subscribers:
        raise dg.Failure(description=f"subscriber {name!r} is not in subscriptions.yaml")
    sub = config.subscriptions.subscribers[name]
    try:
        with stopwatch() as watch:
            result = syndicate(hub.engine, config, name, home=hub.home_path())
    except SubscriberFailing as exc:
        state = subscriber_status(hub.engine, config)[name]
        yield _dead_letter_check(state)
        yield dg.AssetCheckResult(
            check_name=LAG,
            passed=False,
            metadata={
                "status": "failing",
                "pending_events": state["pending"],
                "failing_since": state["failing_since"] or "",
                "last_error": state["last_error"] or "",
            },
        )
        raise dg.Failure(description=str(exc)) from None
    status = subscriber_status(hub.engine, config)
    mine = status[name]
    context.log.info(
        f"{name}: delivered {result.delivered}, pending {result.pending} "
        + watch.said(result.delivered, "messages")
    )
    yield dg.MaterializeResult(
        metadata={
            "delivered": result.delivered,
            "snapshot": result.snapshot,
            "skipped_events": result.skipped,
            "retries": result.retries,
            "batches": result.batches,
            **watch.metadata(result.delivered, "messages"),
            "pending_events": result.pending,
            "delivered_total": mine["delivered_total"],
            "status": mine["status"],
            "outbox_seq": mine["outbox_seq"],
            "dead_lettered": result.dead_lettered,
            "held": result.held,
            "retried": result.retried,
            "subscribers": _lag_table(status),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=LAG,
                passed=mine["status"] == "ok" and result.pending <= sub.max_lag_events,
                metadata={"pending_events": result.pending, "max_lag_events": sub.max_lag_events},
            ),
            _dead_letter_check(mine),
        ],
    )


def _dead_letter_check(state: dict) -> dg.AssetCheckResult:
    """Fails (ERROR) while the subscriber has dead letters; counts only, no ids or values."""
    return dg.AssetCheckResult(
        check_name=DEAD_LETTERS,
        passed=state["dead_lettered"] == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "dead_lettered": state["dead_lettered"],
            "held": state["held"],
            "queued_for_retry": state["requeued"],
        },
    )
