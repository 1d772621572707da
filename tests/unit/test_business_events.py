"""Business events (events.yaml): derived from a golden change, validated at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdm_orchestration.config import ConfigError, EventsConfig, init_config_dir, load_hub_config
from mdm_orchestration.survivorship.business_events import business_events

GRANTED = {"marketing": {"granted": True}, "analytics": {"granted": True}}
WITHDRAWN = {"marketing": {"granted": False}, "analytics": {"granted": True}}


def _events(changed, old_life="customer", new_life="customer", old_c=None, new_c=None):  # type: ignore[no-untyped-def]
    return business_events(
        EventsConfig(), changed, old_life, new_life, old_c or GRANTED, new_c or GRANTED
    )


def test_each_default_rule_fires_on_its_change_and_only_on_it() -> None:
    assert _events(["postcode", "city"]) == ["address_changed"]
    assert _events(["email"]) == ["contact_details_changed"]
    assert _events(["family_name", "full_name", "phone"]) == [
        "contact_details_changed",
        "name_changed",
    ]
    assert _events(["lifecycle"], "lead", "customer") == ["became_customer"]
    assert _events(["lifecycle"], "customer", "lead") == []  # no event for the way back
    assert _events(["consents.marketing"], new_c=WITHDRAWN) == ["consent_withdrawn"]
    assert _events(["consents.marketing"], old_c=WITHDRAWN) == ["consent_given"]
    assert _events(["organisation_golden_id"]) == ["organisation_changed"]
    assert _events(["members"]) == []
    assert _events(["lineage"]) == []


def test_a_consent_rule_narrowed_to_purposes() -> None:
    config = EventsConfig(
        events={"marketing_opt_out": {"consent": "withdrawn", "purposes": ["marketing"]}}
    )
    analytics_off = {"marketing": {"granted": True}, "analytics": {"granted": False}}
    assert business_events(config, ["consents.analytics"], None, None, GRANTED, analytics_off) == []
    assert business_events(config, ["consents.marketing"], None, None, GRANTED, WITHDRAWN) == [
        "marketing_opt_out"
    ]


def _config_dir(tmp_path: Path, events_yaml: str, subscriptions_yaml: str | None = None) -> Path:
    folder = tmp_path / "config"
    init_config_dir(folder)
    (folder / "events.yaml").write_text(events_yaml)
    if subscriptions_yaml is not None:
        (folder / "subscriptions.yaml").write_text(subscriptions_yaml)
    return folder


@pytest.mark.parametrize(
    ("events_yaml", "message"),
    [
        ("events:\n  moved:\n    changed_any: [shoe_size]\n", "unknown attribute(s) ['shoe_size']"),
        ("events:\n  promoted:\n    lifecycle_to: [vip]\n", "unknown lifecycle(s) ['vip']"),
        ("events:\n  updated:\n    changed_any: [city]\n", "the name of a change event"),
        ("events:\n  nothing: {}\n", "needs at least one of"),
    ],
)
def test_a_bad_rule_is_a_clear_error_naming_the_file_and_field(
    tmp_path: Path, events_yaml: str, message: str
) -> None:
    folder = _config_dir(tmp_path, events_yaml)
    with pytest.raises(ConfigError, match="events.yaml") as caught:
        load_hub_config(folder)
    assert message in str(caught.value)


def test_a_subscriber_selects_business_events_by_name(tmp_path: Path) -> None:
    subs = (
        "subscribers:\n  movers:\n    transport: file\n    file: {folder: out}\n"
        "    events: [address_changed, erased]\n"
    )
    config = load_hub_config(
        _config_dir(tmp_path, "events:\n  address_changed:\n    changed_any: [city]\n", subs)
    )
    assert config.subscriptions.subscribers["movers"].events == ["address_changed", "erased"]
    bad = subs.replace("address_changed, erased", "adress_changed")
    with pytest.raises(ConfigError) as caught:
        load_hub_config(
            _config_dir(
                tmp_path / "b", "events:\n  address_changed:\n    changed_any: [city]\n", bad
            )
        )
    assert "subscriber 'movers': field 'events': unknown event type(s) ['adress_changed']" in str(
        caught.value
    )
