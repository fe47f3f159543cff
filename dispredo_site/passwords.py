"""A password validator (AUTH_PASSWORD_VALIDATORS) against passwords built from the user's own names.

Django's UserAttributeSimilarityValidator compares the whole password with each attribute, so
"nurse1234567" or "nurse-nurse-nurse" pass for the user "nurse": the name is a small part of a long
password. This one refuses any password that contains the user name, the first or last name, or the
name of the e-mail address (the part before the @), in any case, and each word of those (split at
anything but letters and digits). Words shorter than ``min_length`` are ignored: "al" or "li" occur
in too many good passwords to say anything.
"""

import re

from django.core.exceptions import ValidationError

# The user's attributes checked, with how a message names them.
ATTRIBUTES = {
    "username": "the user name",
    "first_name": "the first name",
    "last_name": "the last name",
    "email": "the name of the e-mail address",
}
MESSAGE = (
    "This password contains %(what)s, “%(part)s”. Choose one with nothing of the user’s names or e-mail "
    "address in it."
)
_WORD_SEPARATORS = re.compile(r"[^\w]+|_+")


def _parts(value, min_length):
    """``value`` in lower case and each of its words, those of at least ``min_length`` characters."""
    value = value.casefold()
    parts = [value, *_WORD_SEPARATORS.split(value)]
    return [part for part in dict.fromkeys(parts) if len(part) >= min_length]


class UserNamePartsValidator:
    """Refuses a password containing the user's name, first or last name, or e-mail name."""

    def __init__(self, min_length=3):
        self.min_length = min_length

    def names_in(self, user):
        """(how it is named, part) for each part of the user's names, longest first."""
        found = []
        for attribute, what in ATTRIBUTES.items():
            value = getattr(user, attribute, None)
            if not value or not isinstance(value, str):
                continue
            if attribute == "email":
                value = value.rpartition("@")[0] or value
            found += [(what, part) for part in _parts(value, self.min_length)]
        return sorted(found, key=lambda item: -len(item[1]))

    def validate(self, password, user=None):
        if user is None:
            return
        folded = password.casefold()
        for what, part in self.names_in(user):
            if part in folded:
                raise ValidationError(
                    MESSAGE, code="password_contains_user_name", params={"what": what, "part": part}
                )

    def get_help_text(self):
        return (
            "Your password can’t contain your user name, your first or last name, or the name of your "
            "e-mail address."
        )
