"""Phone numbers as Allo takes them: any format in, E.164 out."""

from __future__ import annotations

import phonenumbers

# A number written without an international prefix is read as French: the team is French.
DEFAULT_REGION = "FR"


def to_e164(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """The number in E.164 (``+33612345678``), or None if it is not a valid phone number."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
