"""The redaction logging filter (RELIABILITY.md design rule 6): the hub logs counts and hashes,
and should a value slip into a message anyway (an exception's text, a library's log line), the
filter masks what looks like an email address or a phone number (or another long digit string,
such as a social security number) before any handler writes it.

Hashes, run ids, dates, times and counts pass: a digit run counts only when it stands alone
(not inside a hex hash or an id) and holds 9 to 15 digits, and an ISO date or time is not one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

EMAIL_MASK = "<email>"
NUMBER_MASK = "<number>"

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
#: Digits in groups joined by spaces, dots, dashes or parentheses, with an optional leading +,
#: standing alone: ``(231) 906-5567``, ``+44 20 7946 0958``, ``123-45-6789``, ``7653813035``.
_NUMBER = re.compile(r"(?<![\w.+-])\+?\(?\d[\d ().-]*\d(?![\w-]|\.\d)")
_DATE_OR_TIME = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}")
_MIN_DIGITS, _MAX_DIGITS = 9, 15

#: The loggers of the hub's own processes: the service, uvicorn under it, the hub's modules.
HUB_LOGGERS = ("mdm", "mdm_orchestration", "uvicorn", "uvicorn.error")


def _number(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if not _MIN_DIGITS <= digits <= _MAX_DIGITS or _DATE_OR_TIME.search(text):
        return text
    return NUMBER_MASK


def redact(text: str) -> str:
    """``text`` with email addresses and phone-like numbers masked."""
    return _NUMBER.sub(_number, _EMAIL.sub(EMAIL_MASK, text))


class RedactingFilter(logging.Filter):
    """Masks emails and phone-like numbers in a record's message (arguments merged in) and in
    its exception text. It never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_redaction(names: Iterable[str] = HUB_LOGGERS) -> RedactingFilter:
    """Put one :class:`RedactingFilter` on each named logger and on each of its handlers (a
    logger's own filters do not see its children's records; its handlers do). Installing twice
    adds nothing."""
    found = None
    for name in names:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            present = [f for f in target.filters if isinstance(f, RedactingFilter)]
            if present:
                found = found or present[0]
                continue
            found = found or RedactingFilter()
            target.addFilter(found)
    return found or RedactingFilter()
