"""Emails and phone numbers.

Email syntax is checked by ``email-validator`` (RFC 5322/6531, no DNS look-ups: cleansing must
not leak customer data onto the network, and must give the same answer offline). Phones are
parsed, validated and formatted to E.164 by ``phonenumbers`` (Google's libphonenumber metadata)
with the source's default country for national numbers. Invalid values are kept and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from mdm_orchestration.cleansing.text import clean_text

#: Providers whose mailboxes ignore dots in the local part, and their alias domains.
DOTLESS_PROVIDERS = frozenset({"gmail.com"})
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


@dataclass(frozen=True)
class Email:
    email: str | None = None
    email_key: str | None = None
    valid: bool | None = None  # None: no value


@dataclass(frozen=True)
class Phone:
    phone: str | None = None
    valid: bool | None = None  # None: no value


@lru_cache(maxsize=262144)
def normalise_email(value: str | None) -> Email:
    """Lower-cased, syntax-checked email and a match key that folds provider aliases.

    The key drops a ``+tag`` from the local part (sub-addressing), and dots for providers that
    ignore them: ``John.Smith+shop@GoogleMail.com`` -> ``johnsmith@gmail.com``.
    """
    text = clean_text(value)
    if not text:
        return Email()
    text = text.strip("<>").lower()
    if text.startswith("mailto:"):
        text = text[len("mailto:") :]
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return Email(email=text, email_key=None, valid=False)
    email = checked.normalized.lower()
    local, _, domain = email.rpartition("@")
    domain = DOMAIN_ALIASES.get(domain, domain)
    local = local.split("+", 1)[0] or local
    if domain in DOTLESS_PROVIDERS:
        local = local.replace(".", "")
    return Email(email=email, email_key=f"{local}@{domain}", valid=True)


@lru_cache(maxsize=262144)
def normalise_phone(value: str | None, default_country: str) -> Phone:
    """E.164 for a valid number (national numbers read in ``default_country``); else as given."""
    text = clean_text(value)
    if not text:
        return Phone()
    try:
        number = phonenumbers.parse(text, default_country)
    except phonenumbers.NumberParseException:
        return Phone(phone=text, valid=False)
    if not phonenumbers.is_valid_number(number):
        return Phone(phone=text, valid=False)
    return Phone(
        phone=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), valid=True
    )
