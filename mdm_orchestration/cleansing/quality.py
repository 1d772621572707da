"""The quality verdict of a cleansed batch: which rules each record failed, its score, and
why a blocked record is quarantined. Pure, like the rest of cleansing."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mdm_orchestration.config import (
    CANONICAL_FIELDS,
    QUALITY_RULES,
    QualityConfig,
    Severity,
    SourceConfig,
)

#: Which cleansed column answers "is this canonical field filled (and valid)?".
FILLED_BY = {name: name for name in CANONICAL_FIELDS} | {
    "organisation_key": "organisation_record_id"
}
VALID_BY = {"email": "email_valid", "phone": "phone_valid", "national_id": "national_id_valid"}
#: The canonical field each rule concerns (the quarantine row names it).
RULE_FIELD = {
    "no_name": "full_name",
    "no_contact_point": "email",
    "email_invalid": "email",
    "phone_invalid": "phone",
    "address_unparsed": "street",
    "postcode_invalid": "postcode",
    "country_unknown": "country",
    "birth_date_invalid": "birth_date",
    "birth_date_implausible": "birth_date",
    "national_id_invalid": "national_id",
}
#: Rules that read several canonical fields (the quarantine detail names all their columns).
RULE_FIELDS = {
    "no_name": ("given_name", "family_name", "full_name", "company_name"),
    "no_contact_point": ("email", "phone", "street"),
}
#: The rules the address parser reports as flags of its own.
ADDRESS_RULES = ("address_unparsed", "postcode_invalid", "country_unknown")


def _is_false(column: pd.Series) -> np.ndarray:
    return (column == False).fillna(False).to_numpy(bool)  # noqa: E712


def failed_rules(
    out: pd.DataFrame,
    is_org: np.ndarray,
    address_flags: list[tuple[str, ...]],
    born_invalid: pd.Series,
    born_implausible: pd.Series,
    required: list[str],
) -> dict[str, np.ndarray]:
    """Every rule's outcome over the cleansed batch ``out``, as one boolean column per rule
    (``required_missing:<field>`` per required field)."""
    failed: dict[str, np.ndarray] = {
        "no_name": np.where(
            is_org, out["company_name"].isna(), out["given_name"].isna() & out["family_name"].isna()
        ),
        "email_invalid": _is_false(out["email_valid"]),
        "phone_invalid": _is_false(out["phone_valid"]),
        "national_id_invalid": _is_false(out["national_id_valid"]),
        "birth_date_invalid": born_invalid.to_numpy(bool),
        "birth_date_implausible": born_implausible.to_numpy(bool),
        "no_contact_point": ~(
            out["email_valid"].fillna(False).to_numpy(bool)
            | out["phone_valid"].fillna(False).to_numpy(bool)
            | out["street"].notna().to_numpy()
        ),
    }
    for rule in ADDRESS_RULES:
        failed[rule] = np.array([rule in f for f in address_flags], dtype=bool)
    for field in required:
        column = out[FILLED_BY[field]]
        missing = column.isna().to_numpy().copy()
        if field in VALID_BY:
            missing |= ~out[VALID_BY[field]].fillna(False).to_numpy(bool)
        failed[f"required_missing:{field}"] = missing
    return failed


def score(
    failed: dict[str, np.ndarray], n: int, quality: QualityConfig, source: str
) -> tuple[list[list[str]], np.ndarray, set[str]]:
    """Each of the ``n`` records' failed rules (in rule order) and quality score (1 less the
    weights of its failures, within 0..1), and which of the rules block (quarantine)."""
    names_in_order = [r for r in failed if r.split(":")[0] in QUALITY_RULES]
    weights = {r: quality.rule(source, r.split(":")[0]).weight for r in names_in_order}
    blocking = {
        r
        for r in names_in_order
        if quality.rule(source, r.split(":")[0]).severity == Severity.block
    }
    matrix = np.column_stack([failed[r] for r in names_in_order]) if n else np.zeros((0, 0), bool)
    flags: list[list[str]] = [[] for _ in range(n)]
    rows, cols = np.nonzero(matrix)
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        flags[i].append(names_in_order[j])
    penalty = (
        matrix.astype(float) @ np.array([weights[r] for r in names_in_order]) if n else np.zeros(0)
    )
    return flags, np.round(np.clip(1.0 - penalty, 0.0, 1.0), 3), blocking


def quarantine_rows(
    out: pd.DataFrame, flags: list[list[str]], blocking: set[str], source: SourceConfig
) -> tuple[np.ndarray, pd.DataFrame]:
    """Which records a blocking rule stops, and their quarantine rows (``extract_id,
    row_number, reason, field, detail, rules``): the first blocking rule is the reason."""
    blocked = np.array([any(f in blocking for f in fl) for fl in flags], dtype=bool)
    q = out.loc[blocked, ["extract_id", "row_number"]].copy()
    q_flags = [flags[i] for i in np.nonzero(blocked)[0]]
    q["reason"] = [next(f for f in fl if f in blocking).split(":")[0] for fl in q_flags]
    q["field"] = [_rule_field(next(f for f in fl if f in blocking)) for fl in q_flags]
    q["detail"] = [_detail(fl, blocking, source) for fl in q_flags]
    q["rules"] = q_flags
    return blocked, q


def _rule_field(flag: str) -> str:
    rule, _, field = flag.partition(":")
    return field or RULE_FIELD.get(rule, rule)


def _detail(flags: list[str], blocking: set[str], source: SourceConfig) -> str:
    """Which blocking rules failed and the source columns they read. Never a value."""
    parts = []
    for flag in flags:
        if flag not in blocking:
            continue
        rule = flag.split(":")[0]
        fields = RULE_FIELDS.get(rule, (_rule_field(flag),))
        columns = [
            f"{col} ({fld})"
            for fld in fields
            for col in (source.mapping[fld].source_columns if fld in source.mapping else [])
        ]
        where = ", ".join(columns) if columns else "not mapped"
        parts.append(f"{flag}: {QUALITY_RULES[rule]}; source column(s): {where}")
    return "; ".join(parts)
