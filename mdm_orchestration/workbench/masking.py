"""What a viewer sees of contact details and ids: enough to tell records apart, not to use them.

``jane.doe@example.com`` -> ``j•••@example.com``; ``+15551234567`` -> ``•••••••••67``;
``123-45-6789`` -> ``•••••6789``.
"""

from __future__ import annotations

from typing import Any

MASK = "•"
#: Record and golden fields masked for a viewer.
MASKED_FIELDS = frozenset(
    {"email", "email_key", "phone", "phone_digits", "national_id", "birth_date", "birth"}
)


def mask_email(value: str) -> str:
    local, at, domain = value.partition("@")
    if not at:
        return MASK * 3
    return f"{local[:1]}{MASK * 3}@{domain}"


def mask_tail(value: str, keep: int) -> str:
    text = str(value)
    if len(text) <= keep:
        return MASK * len(text)
    return MASK * min(9, len(text) - keep) + text[-keep:]


def masked(field: str, value: Any) -> Any:  # noqa: ANN401
    """``value`` as a viewer sees it in ``field`` (other fields as they are)."""
    if value is None or value == "" or not is_masked(field):
        return value
    text = str(value)
    if "email" in field:
        return mask_email(text)
    if "phone" in field:
        return mask_tail(text, 2)
    if "birth" in field:
        return text[:4] + "-••-••" if len(text) >= 4 else MASK * 3
    return mask_tail(text, 4)


def is_masked(field: str) -> bool:
    return field in MASKED_FIELDS or "email" in field or "phone" in field or "national" in field


def masked_mapping(values: dict[str, Any], show: bool) -> dict[str, Any]:
    """A record's fields, masked unless ``show``."""
    if show:
        return dict(values)
    return {k: masked(k, v) for k, v in values.items()}
