"""A mastered hub delivered to a RabbitMQ subscriber and to a SQL subscriber on MariaDB, the
real local servers (a vhost and a database of the test's own)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pika
import sqlalchemy as sa
import yaml

from mdm_orchestration.config import load_hub_config
from mdm_orchestration.hub.store import create_hub_engine
from mdm_orchestration.syndication import syndicate
from tests.conftest import CONFIG_DIR
from tests.helpers import build_mastered_hub
from tests.integration.test_rabbitmq import _url, vhost  # noqa: F401  (the fixture)
from tests.integration.test_sql_subscribers import mariadb_url  # noqa: F401  (the fixture)


def test_a_hub_syndicates_to_rabbitmq_and_mariadb(
    tmp_path: Path,
    sample_silos: Path,
    vhost: str,  # noqa: F811
    mariadb_url: str,  # noqa: F811
) -> None:
    build_mastered_hub(tmp_path, sample_silos)
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    (config_dir / "subscriptions.yaml").write_text(
        yaml.safe_dump(
            {
                "subscribers": {
                    "bus": {
                        "transport": "amqp",
                        "amqp": {
                            "url": _url(vhost),
                            "queue": "crm",
                            "routing_key": "mdm.{event_type}",
                        },
                        "batch_size": 250,
                    },
                    "crm_db": {
                        "transport": "sql",
                        "sql": {"url": mariadb_url, "table": "golden_customers"},
                    },
                }
            }
        )
    )
    config = load_hub_config(config_dir)
    engine = create_hub_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        bus = syndicate(engine, config, "bus", home=tmp_path)
        db = syndicate(engine, config, "crm_db", home=tmp_path)
        with engine.connect() as conn:
            active = dict(
                conn.execute(
                    sa.text("SELECT golden_id, version FROM golden_records WHERE status = 'active'")
                ).all()
            )
    finally:
        engine.dispose()
    assert bus.pending == 0 and db.pending == 0 and active
    # The queue holds one persistent message per golden record of the snapshot, none lost.
    connection = pika.BlockingConnection(pika.URLParameters(_url(vhost)))
    try:
        channel = connection.channel()
        seen: dict[str, int] = {}
        while True:
            method, props, body = channel.basic_get(queue="crm", auto_ack=True)
            if method is None:
                break
            assert props.delivery_mode == 2 and method.routing_key == "mdm.snapshot"
            message = yaml.safe_load(body)
            seen[message["golden_id"]] = message["version"]
    finally:
        connection.close()
    assert seen == active
    target = sa.create_engine(mariadb_url)
    try:
        with target.connect() as conn:
            table = dict(
                conn.execute(sa.text("SELECT golden_id, version FROM golden_customers")).all()
            )
    finally:
        target.dispose()
    assert table == active
