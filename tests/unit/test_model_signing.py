"""Match models are signed (issue 17, defect 15): a model is a pickle, and unpickling runs code,
so one written into the hub database by anyone but the hub is refused before it is unpickled."""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from mdm_orchestration.hub.tables import MODELS, utcnow
from mdm_orchestration.matching import NoModel, load_models, train_models
from mdm_orchestration.matching.labels import load_default_labels
from mdm_orchestration.matching.model import (
    SIGNED_MAGIC,
    ModelKeyError,
    ModelSignatureError,
    load_model,
    model_key,
    sign_settings,
    train_model,
    verify_settings,
)


class _Exploit:
    """A pickle that creates a file when it is loaded: what a hostile model row would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


@pytest.fixture
def own_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default key location (``<MDM_HOME>/model.key``), whatever the test run set."""
    monkeypatch.delenv("MDM_MODEL_KEY_FILE", raising=False)
    monkeypatch.delenv("MDM_MODEL_KEY", raising=False)
    return tmp_path / "mdm_home" / "model.key"


@pytest.fixture(scope="module")
def small_model():
    labels = load_default_labels()["person"]
    return train_model(
        "person",
        [tuple(p) for p in labels["match"][:40]],
        [tuple(p) for p in labels["distinct"][:40]],
    )


def _store(engine: sa.Engine, party: str, settings: bytes) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.insert(MODELS).values(
                party_type=party,
                labels_digest="planted",
                threshold=0.5,
                settings=settings,
                settings_sha256=hashlib.sha256(settings).hexdigest(),
                metrics={},
                created_at=utcnow(),
            )
        )


def test_the_key_file_is_made_on_first_use_owner_only(own_key_file: Path):
    old = os.umask(0)  # even with a permissive umask
    try:
        key = model_key()
    finally:
        os.umask(old)
    assert own_key_file.is_file()
    assert stat.S_IMODE(own_key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(own_key_file.parent.stat().st_mode) == 0o700
    assert len(key) == 32 and model_key() == key  # made once, then read
    assert [p.name for p in own_key_file.parent.iterdir()] == ["model.key"]  # no temp file left


def test_a_key_file_others_can_read_is_refused(own_key_file: Path):
    model_key()
    own_key_file.chmod(0o644)
    with pytest.raises(ModelKeyError, match="chmod 600"):
        model_key()


def test_a_key_in_the_environment_is_used_and_checked(own_key_file, monkeypatch):
    monkeypatch.setenv("MDM_MODEL_KEY", "ab" * 32)
    assert model_key() == bytes.fromhex("ab" * 32)
    assert not own_key_file.exists()
    monkeypatch.setenv("MDM_MODEL_KEY", "ab" * 8)
    with pytest.raises(ModelKeyError, match="at least 32"):
        model_key()
    monkeypatch.setenv("MDM_MODEL_KEY", "not hex")
    with pytest.raises(ModelKeyError, match="hexadecimal"):
        model_key()


def test_a_signed_model_loads(small_model):
    settings = small_model.to_bytes()
    assert settings.startswith(SIGNED_MAGIC)
    again = load_model(settings, party_type="person")
    pair = tuple(load_default_labels()["person"]["match"][0])
    assert again.score([pair]) == pytest.approx(small_model.score([pair]))
    assert again.threshold == small_model.threshold


def test_an_unsigned_model_is_refused(small_model):
    """A hub upgraded from before signing holds models in the old, unsigned layout."""
    with pytest.raises(ModelSignatureError, match="not signed.*mdm match --force"):
        load_model(small_model.pickled_settings())


@pytest.mark.parametrize("where", ["payload", "tag", "end"])
def test_an_altered_model_is_refused(small_model, where):
    settings = bytearray(small_model.to_bytes())
    at = {"payload": len(settings) // 2, "tag": len(SIGNED_MAGIC) + len("person\n") + 3}
    if where == "end":
        settings += b"\x00"
    else:
        settings[at[where]] ^= 0x01
    with pytest.raises(ModelSignatureError, match="fails its signature check"):
        load_model(bytes(settings))


def test_a_model_signed_with_another_key_or_for_another_party_is_refused(small_model):
    payload = small_model.pickled_settings()
    foreign = sign_settings(payload, "person", b"k" * 32)
    with pytest.raises(ModelSignatureError, match="another key"):
        verify_settings(foreign, "person")
    assert verify_settings(foreign, "person", b"k" * 32) == payload
    with pytest.raises(ModelSignatureError, match="signed as a 'person' model"):
        verify_settings(small_model.to_bytes(), "organisation")


@pytest.mark.parametrize("envelope", ["unsigned", "forged"])
def test_a_hostile_pickle_in_the_hub_is_refused_without_running(sqlite_engine, tmp_path, envelope):
    """A pickle with a malicious ``__reduce__`` written straight into match_models (the digest
    column made to fit) is refused before it is unpickled: its side effect never happens."""
    marker = tmp_path / "pwned"
    blob = pickle.dumps(_Exploit(marker))
    if envelope == "forged":  # the signed layout, with a tag made up by the attacker
        blob = SIGNED_MAGIC + b"person\n" + os.urandom(32) + blob
    _store(sqlite_engine, "person", blob)
    with sqlite_engine.connect() as conn, pytest.raises(NoModel) as info:
        load_models(conn)
    assert not marker.exists()
    message = str(info.value)
    assert "person" in message and "mdm match --force" in message
    assert "signature" in message or "not signed" in message


def test_training_replaces_an_unsigned_model_without_loading_it(sqlite_engine, tmp_path):
    """The upgrade path: the next match_model run (``mdm match --force``, ``mdm run``) retrains
    a model it cannot vouch for from the labels, even when the labels did not change; the old
    model is never unpickled, and the new one loads."""
    marker = tmp_path / "pwned"
    for party in ("person", "organisation"):
        _store(sqlite_engine, party, pickle.dumps(_Exploit(marker)))
    summary = train_models(sqlite_engine)
    assert summary.unsigned == {"person": True, "organisation": True}
    assert all(summary.retrained.values())
    with sqlite_engine.connect() as conn:
        assert set(load_models(conn)) == {"person", "organisation"}
    assert not marker.exists()
    again = train_models(sqlite_engine)  # signed now, labels unchanged: nothing to do
    assert again.unsigned == {"person": False, "organisation": False}
    assert not any(again.retrained.values())
