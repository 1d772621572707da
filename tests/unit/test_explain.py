"""Explanations of a pair's score: consistent with the model, field states, JSON-safe."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mdm_orchestration.matching.explain import (
    AGREE,
    DISAGREE,
    MISSING,
    NEAR,
    explain_pair,
    feature_columns,
    sigmoid,
    with_engine_terms,
)
from mdm_orchestration.matching.labels import load_default_labels
from mdm_orchestration.matching.model import FIELDS, train_model


@pytest.fixture(scope="module")
def labelled():
    labels = load_default_labels()["person"]
    return [tuple(p) for p in labels["match"][:40]], [tuple(p) for p in labels["distinct"][:40]]


@pytest.fixture(scope="module")
def model(labelled):
    matches, distincts = labelled
    return train_model("person", matches, distincts)


def row(**fields) -> dict:
    base = dict.fromkeys(FIELDS["person"])
    base.update(given="ann", given_key="ann", family="lee", names="ann|lee")
    return base | fields


def test_every_feature_column_maps_to_a_field(model):
    columns = feature_columns(model.data_model)
    assert len(columns) == len(model.data_model)
    assert {f for c in columns for f in c.fields} == set(FIELDS["person"])
    # one presence indicator per comparator that can be missing
    assert sum(c.indicator for c in columns) == sum(
        v.has_missing for v in model.data_model.field_variables
    )


def test_contributions_add_up_to_the_models_score(model, labelled):
    matches, distincts = labelled
    pairs = matches + distincts
    scores = model.score(pairs)
    for (a, b), score in zip(pairs, scores, strict=True):
        e = explain_pair(model, a, b)
        total = e.intercept + sum(f.contribution for f in e.fields)
        assert abs(sigmoid(total) - float(score)) < 1e-4
        assert abs(e.score - float(score)) < 1e-4
        # each field's contribution is the sum of its comparators'
        for f in e.fields:
            assert math.isclose(
                f.contribution, sum(c.contribution for c in f.comparisons), abs_tol=1e-9
            )


def test_adjustments_move_the_final_score(model, labelled):
    a, b = labelled[0][0]
    plain = explain_pair(model, a, b)
    adjusted = explain_pair(model, a, b, {"term frequency: family": -1.25, "name-only cap": -0.5})
    assert adjusted.model_score == pytest.approx(plain.score)
    assert adjusted.score == pytest.approx(sigmoid(plain.log_odds - 1.75))
    # a rule's certain match (infinite log-odds) stays finite and scores 1
    ruled = explain_pair(model, a, b, {"rule: same_national_id": math.inf})
    assert ruled.score == 1.0 and math.isfinite(ruled.log_odds)
    json.dumps(ruled.as_dict(), allow_nan=False)


def test_field_states(model):
    a = row(
        given="gloria",
        names="gloria|lee",
        phone="+15551234567",
        email="ann@example.com",
        national_id="123-45-6789",
        street="12 main st",
        postcode="10001",
    )
    b = row(
        given="glory",
        names="glory|lee",
        phone="+15551234567",
        email="someone.else@example.org",
        national_id="123-45-6798",  # two digits swapped: one keying slip
        street="12 main st",
        birth="1980-02-03",
    )
    e = explain_pair(model, a, b)
    states = {f.field: f.state for f in e.fields}
    assert states["phone"] == AGREE and states["family"] == AGREE and states["street"] == AGREE
    assert states["given"] == NEAR and states["national_id"] == NEAR
    assert states["email"] == DISAGREE
    assert states["birth"] == MISSING and states["postcode"] == MISSING
    assert states["suffix"] == MISSING
    by_state = e.by_state()
    assert "phone" in by_state[AGREE] and "email" in by_state[DISAGREE]
    # a field missing on either side moves nothing
    assert all(f.contribution == 0.0 for f in e.fields if f.state == MISSING)
    # changing one field's value moves that field's contribution only
    same_email = explain_pair(model, a, b | {"email": a["email"]})
    assert same_email.field("email").state == AGREE
    moved = {
        f.field
        for f, g in zip(e.fields, same_email.fields, strict=True)
        if not math.isclose(f.contribution, g.contribution, abs_tol=1e-9)
    }
    assert moved <= {"email"}
    assert abs(e.score - float(model.score([(a, b)])[0])) < 1e-4


def test_as_dict_round_trips_through_json_and_text_names_each_field(model):
    a = row(phone="+15551234567", birth="1980-02-03")
    b = row(phone="+15551234567", birth=None, city="leeds")
    e = explain_pair(model, a, b, {"name-only cap": -2.0})
    d = e.as_dict()
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back == d
    assert back["party_type"] == "person" and back["threshold"] == model.threshold
    assert [f["field"] for f in back["fields"]] == [f.field for f in e.fields]
    assert back["adjustments"] == [{"name": "name-only cap", "log_odds": -2.0}]
    assert abs(back["score"] - e.score) < 1e-6
    assert {f["state"] for f in back["fields"]} <= {AGREE, NEAR, DISAGREE, MISSING}
    text = e.text()
    for f in e.fields:
        assert f.field in text
    assert "name-only cap" in text and "model alone" in text
    assert np.isfinite([f["contribution"] for f in back["fields"]]).all()


def test_engine_terms_reproduce_the_engines_final_score(model, labelled):
    """As engine.PairScorer: sigmoid(logit + terms), then a rule's 1.0, the cap at threshold -
    0.01 for a pair without enough evidence, a contradiction's 0.0."""
    t = model.threshold
    for a, b in labelled[0][:10] + labelled[1][:10]:
        raw = float(model.score([(a, b)])[0])
        base = explain_pair(model, a, b)
        terms = {"frequency:given_key": -0.8, "invalid_phone": 0.4}
        logit = math.log(raw / (1 - raw)) if 0 < raw < 1 else base.model_log_odds
        adjusted = sigmoid(logit + sum(terms.values()))
        assert abs(with_engine_terms(base, terms).score - adjusted) < 1e-4
        weak = with_engine_terms(base, terms, weak=True)
        assert abs(weak.score - min(adjusted, max(t - 0.01, 0.0))) < 1e-4
        assert with_engine_terms(base, terms, contradicted=True).score < 1e-9
        ruled = with_engine_terms(base, terms, rule="same_national_id")
        assert ruled.score == 1.0 and ruled.adjustments[-1][0] == "rule:same_national_id"
        json.dumps(ruled.as_dict(), allow_nan=False)
