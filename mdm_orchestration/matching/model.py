"""The learned part: dedupe's field comparators and classifier, behind a small interface.

``train_model`` fits dedupe's data model (affine-gap string distances, exact and short-string
comparators, missing-value indicators) and its logistic-regression classifier on labelled
pairs, and chooses the clustering threshold with the best F1 in cross-validation on those labels.
Blocking is ours (``blocking.py``), so dedupe's own predicate learning, its memory-hungry part,
is not run.

The settings are pickles (dedupe's own format), and unpickling runs code: whoever can write the
hub database could otherwise run code in every matching run. So the hub signs what it stores
(HMAC-SHA256 over the party type and the pickled bytes, with a key kept outside the database:
see :func:`model_key`) and ``load_model`` checks the signature before a single byte is unpickled;
an unsigned or altered model is refused (:class:`ModelSignatureError`) and the hub retrains it
from its labels instead (``train_models``).

dedupe and scikit-learn are imported where they are used: importing them takes seconds, and
every Dagster run imports this package (an ingest run never matches).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from affinegap import normalizedAffineGapDistance

from mdm_orchestration.cleansing.names import nickname_related
from mdm_orchestration.hub.store import make_secret_file
from mdm_orchestration.hub.tables import ORGANISATION, PERSON
from mdm_orchestration.matching.records import ORGANISATION_FIELDS, PERSON_FIELDS
from mdm_orchestration.matching.rules import one_slip
from mdm_orchestration.settings import settings as environment

#: Changes when ``variables`` change: part of the labels' digest, so a hub upgraded to new
#: comparators retrains (and then rebuilds) instead of scoring with a model of the old ones.
MODEL_VERSION = 3
FIELDS = {PERSON: PERSON_FIELDS, ORGANISATION: ORGANISATION_FIELDS}

Pair = tuple[dict[str, Any], dict[str, Any]]


def names_any_order(a: str, b: str) -> float:
    """Distance of two ``given|family`` pairs, in whichever order fits better: silos swap the
    two fields. dedupe calls it for records where both are present."""
    ga, _, fa = a.partition("|")
    gb, _, fb = b.partition("|")

    def d(x: str, y: str) -> float:
        return normalizedAffineGapDistance(x, y) if x and y else 0.5

    return min(d(ga, gb) + d(fa, fb), d(ga, fb) + d(fa, gb))


def given_names(a: str, b: str) -> float:
    """Given names: 0 when equal, 0.5 when one is a nickname of the other (``tina`` and
    ``christine``; the match key maps a nickname to one formal name only), 1 otherwise."""
    if a == b:
        return 0.0
    return 0.5 if nickname_related(a, b) else 1.0


def id_distance(a: str, b: str) -> float:
    """National ids: 0 when equal, 0.5 when one keying slip apart (a mistyped or two swapped
    characters), 1 otherwise. dedupe calls it for records where both are present."""
    if a == b:
        return 0.0
    return 0.5 if len(a) >= 6 and one_slip(a, b) else 1.0


def variables(party_type: str) -> list[Any]:
    """dedupe variable definitions per party type."""
    from dedupe import variables as v

    if party_type == PERSON:
        return [
            v.String("given"),
            v.Exact("given_key"),
            v.Custom("given", comparator=given_names),
            v.Exact("middle_initial", has_missing=True),
            v.String("family"),
            v.Custom("names", comparator=names_any_order, has_missing=True),
            v.Exact("suffix", has_missing=True),
            v.ShortString("birth", has_missing=True),
            v.String("email", has_missing=True),
            v.ShortString("phone", has_missing=True),
            v.String("street", has_missing=True),
            v.ShortString("unit", has_missing=True),
            v.ShortString("postcode", has_missing=True),
            v.ShortString("city", has_missing=True),
            v.Custom("national_id", comparator=id_distance, has_missing=True),
        ]
    return [
        v.String("company"),
        v.Exact("legal_form", has_missing=True),
        v.String("email", has_missing=True),
        v.Exact("email_domain", has_missing=True),
        v.ShortString("phone", has_missing=True),
        v.String("street", has_missing=True),
        v.ShortString("unit", has_missing=True),
        v.ShortString("postcode", has_missing=True),
        v.ShortString("city", has_missing=True),
        v.Exact("national_id", has_missing=True),
    ]


#: From this many records :meth:`FieldColumns.of_frame` codes values with ``pd.factorize``.
_FACTORIZE_ROWS = 64


@dataclass
class FieldColumns:
    """Records' comparison fields as columns: per field, an integer code per record (-1 where
    the value is None, dedupe's missing) and the distinct values the codes index."""

    codes: dict[str, np.ndarray]
    values: dict[str, list[Any]]
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def of_frame(cls, records: Any, fields: Any) -> FieldColumns:  # noqa: ANN401
        """``records``: a match frame, or its :class:`~.rules.Columns`."""
        codes, values = {}, {}
        for name in fields:
            column = records[name]
            if not isinstance(column, np.ndarray):
                column = column.to_numpy(object)
            # A few records (the service's): coded one by one, which costs less than
            # factorize's fixed cost and is what it gives where no value is NaN.
            code, uniques = (
                pd.factorize(column, use_na_sentinel=True)
                if len(column) >= _FACTORIZE_ROWS
                else (None, None)
            )
            # factorize takes NaN for missing too; dedupe takes only None (rare here: then the
            # values are coded one by one).
            if code is None or ((code < 0) & ~np.equal(column, None)).any():
                index: dict[Any, int] = {}
                code = np.fromiter(
                    (-1 if v is None else index.setdefault(v, len(index)) for v in column),
                    dtype=np.int64,
                    count=len(column),
                )
                uniques = list(index)
            codes[name] = np.asarray(code, dtype=np.int64)
            values[name] = list(uniques)
        return cls(codes, values)

    def array(self, name: str) -> np.ndarray:
        """The distinct values of ``name`` as an object array (made once)."""
        held = self._arrays.get(name)
        if held is None:
            held = np.empty(len(self.values[name]), dtype=object)
            held[:] = self.values[name]
            self._arrays[name] = held
        return held

    def row(self, i: int) -> dict[str, Any]:
        """Record ``i`` as dedupe's record dict."""
        return {
            name: (self.values[name][c] if c >= 0 else None)
            for name, code in self.codes.items()
            for c in (int(code[i]),)
        }


def column_distances(
    data_model: Any,  # noqa: ANN401
    columns: FieldColumns,
    left: np.ndarray,
    right: np.ndarray,
) -> np.ndarray:
    """dedupe's ``DataModel.distances`` of the pairs ``(left[i], right[i])``, the same figures
    computed a field at a time: an exact comparator by comparing codes, any other once per
    distinct pair of values (a city or a birth date recurs across thousands of pairs)."""
    from dedupe.variables.exact import ExactType

    n = len(left)
    out = np.empty((n, len(data_model)), "f4")
    for name, compare, start, stop in data_model._field_comparators:
        codes, values = columns.codes[name], columns.values[name]
        a, b = codes[left], codes[right]
        if stop - start != 1 or hasattr(compare, "missing"):
            # Not one of ours (several columns, or a comparator of missing values): as dedupe.
            for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
                vx = values[x] if x >= 0 else None
                vy = values[y] if y >= 0 else None
                if (vx is not None and vy is not None) or hasattr(compare, "missing"):
                    out[i, start:stop] = compare(vx, vy)
                else:
                    out[i, start:stop] = np.nan
            continue
        column = np.full(n, np.nan, dtype=np.float64)
        both = np.nonzero((a >= 0) & (b >= 0))[0]
        if len(both):
            x, y = a[both], b[both]
            if compare is ExactType.comparator:
                column[both] = x == y
            else:
                width = max(len(values), 1)
                distinct, inverse = np.unique(x * width + y, return_inverse=True)
                held = columns.array(name)
                computed = np.fromiter(
                    map(compare, held[distinct // width].tolist(), held[distinct % width].tolist()),
                    dtype=np.float64,
                    count=len(distinct),
                )
                column[both] = computed[inverse]
        out[:, start] = column
    return data_model._add_derived_distances(out)


@dataclass
class MatchModel:
    party_type: str
    data_model: Any
    classifier: Any
    threshold: float
    metrics: dict[str, float] = field(default_factory=dict)

    def score(self, pairs: list[Pair], batch: int = 20_000) -> np.ndarray:
        """Match probability of each record pair."""
        out = np.zeros(len(pairs), dtype=np.float32)
        for start in range(0, len(pairs), batch):
            chunk = pairs[start : start + batch]
            distances = self.data_model.distances(chunk)
            out[start : start + len(chunk)] = self.classifier.predict_proba(distances)[:, 1]
        return out

    def score_indexed(
        self,
        columns: FieldColumns,
        left: np.ndarray,
        right: np.ndarray,
        batch: int = 20_000,
        block: int = 200_000,
    ) -> np.ndarray:
        """Match probability of the pairs ``(left[i], right[i])`` of the records ``columns``
        holds: the comparators run a field at a time over the distinct value pairs of a block of
        pairs (:func:`column_distances`), so no pair or record becomes a Python object. The
        classifier sees ``batch`` pairs at a time, as :meth:`score` feeds it."""
        out = np.zeros(len(left), dtype=np.float32)
        block = max(block // batch, 1) * batch
        for start in range(0, len(left), block):
            distances = column_distances(
                self.data_model, columns, left[start : start + block], right[start : start + block]
            )
            for at in range(0, len(distances), batch):
                chunk = distances[at : at + batch]
                out[start + at : start + at + len(chunk)] = self.classifier.predict_proba(chunk)[
                    :, 1
                ]
        return out

    def to_bytes(self, key: bytes | None = None) -> bytes:
        """The settings as the hub stores them: :meth:`pickled_settings`, signed with ``key``
        (default: :func:`model_key`)."""
        return sign_settings(self.pickled_settings(), self.party_type, key)

    def pickled_settings(self) -> bytes:
        """dedupe's settings layout (data model, classifier, predicates) plus our threshold,
        unsigned (what the hub stored before models were signed)."""
        buffer = io.BytesIO()
        pickle.dump(self.data_model, buffer)
        pickle.dump(self.classifier, buffer)
        pickle.dump((), buffer)  # no learned predicates: blocking is ours
        pickle.dump(
            {"party_type": self.party_type, "threshold": self.threshold, "metrics": self.metrics},
            buffer,
        )
        return buffer.getvalue()


# --- Signing ---------------------------------------------------------------------------------

#: The first bytes of signed settings; a pickle never starts like this (pickles start 0x80).
SIGNED_MAGIC = b"MDM-MODEL HMAC-SHA256 1\n"
#: Length of the signing key in bytes, and the least a key given in MDM_MODEL_KEY must have.
KEY_BYTES = 32
_TAG_BYTES = hashlib.sha256().digest_size
#: What to do about a refused model, in every refusal's message.
RETRAIN_HINT = (
    "retrain it from the hub's labels with `mdm match --force` (or materialise match_model in "
    "the Dagster UI), which stores a newly signed model"
)


class ModelKeyError(RuntimeError):
    """The model-signing key cannot be read, is malformed, or is open to other users."""


class ModelSignatureError(ValueError):
    """Stored settings that are unsigned, altered, or signed with another key: never unpickled."""


def _head(party_type: str) -> bytes:
    return SIGNED_MAGIC + party_type.encode("ascii") + b"\n"


def sign_settings(payload: bytes, party_type: str, key: bytes | None = None) -> bytes:
    """``payload`` (pickled settings) in the signed layout: the magic line, the party type, the
    HMAC-SHA256 tag over all of that and the payload, then the payload."""
    head = _head(party_type)
    tag = hmac.new(key or model_key(), head + payload, hashlib.sha256).digest()
    return head + tag + payload


def verify_settings(settings: bytes, party_type: str | None, key: bytes | None = None) -> bytes:
    """The pickled payload of signed ``settings``, once their tag is checked (in constant time)
    against ``key`` (default: :func:`model_key`); :class:`ModelSignatureError` otherwise. With
    ``party_type``, settings signed for another party type are refused too. Nothing is
    unpickled here."""
    if not settings.startswith(SIGNED_MAGIC):
        raise ModelSignatureError(
            "the model is not signed: it was stored before models were signed, or written into "
            "the hub database by something other than the hub; it was not loaded (loading runs "
            f"code); {RETRAIN_HINT}"
        )
    end = settings.find(b"\n", len(SIGNED_MAGIC))
    if end < 0 or len(settings) < end + 1 + _TAG_BYTES:
        raise ModelSignatureError(f"the model's signature is malformed; {RETRAIN_HINT}")
    signed_for = settings[len(SIGNED_MAGIC) : end].decode("ascii", "replace")
    head = settings[: end + 1]
    tag = settings[end + 1 : end + 1 + _TAG_BYTES]
    payload = settings[end + 1 + _TAG_BYTES :]
    expected = hmac.new(key or model_key(), head + payload, hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        raise ModelSignatureError(
            "the model fails its signature check: it was altered in the hub database, or signed "
            f"with another key than this hub's ({key_source()}); it was not loaded. If the key is "
            f"the right one, find out who changed the model, then {RETRAIN_HINT}"
        )
    if party_type is not None and signed_for != party_type:
        raise ModelSignatureError(
            f"the model is signed as a {signed_for!r} model but stored as {party_type!r}; "
            f"it was not loaded; {RETRAIN_HINT}"
        )
    return payload


def is_signed(settings: bytes, party_type: str | None, key: bytes | None = None) -> bool:
    """Whether :func:`verify_settings` accepts ``settings`` (without unpickling anything)."""
    try:
        verify_settings(settings, party_type, key)
    except ModelSignatureError:
        return False
    return True


def key_source() -> str:
    """Where :func:`model_key` takes the key from, for messages (never the key itself)."""
    env = environment()
    if env.mdm_model_key is not None:
        return "the MDM_MODEL_KEY environment variable"
    return f"the key file {env.model_key_file}"


def _parse_key(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ModelKeyError(f"{where}: the model key must be hexadecimal digits") from None
    if len(key) < KEY_BYTES:
        raise ModelKeyError(
            f"{where}: the model key has {len(key)} bytes; at least {KEY_BYTES} are needed "
            "(`openssl rand -hex 32` makes one)"
        )
    return key


def _read_key_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "r", encoding="ascii") as fh:
        st = os.fstat(fh.fileno())
        if os.name == "posix" and st.st_mode & 0o077:
            raise ModelKeyError(
                f"{path}: the model key file is open to other users (mode "
                f"{oct(st.st_mode & 0o777)}): whoever can read it can sign a model the hub will "
                "run. Make it the owner's alone (`chmod 600`), or, if others may have read it, "
                f"delete it (a new key is made) and {RETRAIN_HINT}"
            )
        return _parse_key(fh.read(), str(path))


def model_key() -> bytes:
    """The key that signs and verifies match models: ``MDM_MODEL_KEY`` (hex) when set, else the
    file ``MDM_MODEL_KEY_FILE`` (default ``<MDM_HOME>/model.key``), created on first use with
    a random key, mode 0600, in a folder created 0700. Every process that trains or loads
    models for one hub needs the same key; the key never goes into the hub database."""
    env = environment()
    if env.mdm_model_key is not None:
        return _parse_key(env.mdm_model_key.get_secret_value(), "MDM_MODEL_KEY")
    path = env.model_key_file
    with contextlib.suppress(FileNotFoundError):
        return _read_key_file(path)
    make_secret_file(path, KEY_BYTES)
    return _read_key_file(path)


def load_model(
    settings: bytes, key: bytes | None = None, *, party_type: str | None = None
) -> MatchModel:
    """Load settings written by :meth:`MatchModel.to_bytes`, after checking their signature
    (:func:`verify_settings`): an unsigned or altered model raises :class:`ModelSignatureError`
    before anything is unpickled."""
    payload = verify_settings(settings, party_type, key)
    import dedupe

    buffer = io.BytesIO(payload)
    static = dedupe.StaticDedupe(buffer, num_cores=0)
    extra = pickle.load(buffer)
    return MatchModel(
        party_type=extra["party_type"],
        data_model=static.data_model,
        classifier=static.classifier,
        threshold=float(extra["threshold"]),
        metrics=dict(extra["metrics"]),
    )


def settings_digest(settings: bytes) -> str:
    return hashlib.sha256(settings).hexdigest()


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, dict[str, float]]:
    """The threshold in 0.05 .. 0.95 with the best F1 of ``p >= threshold`` against ``y``."""
    best = (0.5, {"f1": -1.0})
    for t in np.round(np.arange(0.05, 0.96, 0.01), 2):
        pred = p >= t
        tp = float(np.sum(pred & (y == 1)))
        fp = float(np.sum(pred & (y == 0)))
        fn = float(np.sum(~pred & (y == 1)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best[1]["f1"]:
            best = (
                float(t),
                {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)},
            )
    return best


class TrainingError(ValueError):
    """Not enough labelled pairs to train on."""


def train_model(party_type: str, matches: list[Pair], distincts: list[Pair]) -> MatchModel:
    """Fit dedupe's data model and classifier on labelled pairs; choose the threshold by
    5-fold cross-validated F1 on the same labels."""
    if len(matches) < 10 or len(distincts) < 10:
        raise TrainingError(
            f"{party_type}: {len(matches)} match and {len(distincts)} distinct labels; "
            "at least 10 of each are needed"
        )
    import dedupe
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    deduper = dedupe.Dedupe(variables(party_type), num_cores=0)
    # dedupe searches C with n_jobs=-1 (a process per core); a run worker must not fork.
    deduper.classifier.set_params(n_jobs=1, estimator__max_iter=2000)
    examples = matches + distincts
    y = np.array([1] * len(matches) + [0] * len(distincts))
    distances = deduper.data_model.distances(examples)
    deduper.classifier.fit(distances, y)
    best = deduper.classifier.best_estimator_
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    p = cross_val_predict(best, distances, y, cv=folds, method="predict_proba")[:, 1]
    threshold, metrics = best_f1_threshold(y, p)
    metrics = {
        **metrics,
        "labels_match": len(matches),
        "labels_distinct": len(distincts),
        "C": float(deduper.classifier.best_params_["C"]),
    }
    return MatchModel(party_type, deduper.data_model, deduper.classifier, threshold, metrics)
