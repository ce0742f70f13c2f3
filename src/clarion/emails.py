"""E-mail addresses and header text, one definition for every part that handles them."""

from __future__ import annotations

import re

# A usable address: something@domain.tld, with none of the characters that would make a
# header hold more than one address.
EMAIL = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+")


def one_line(text: str) -> str:
    """Text as a header carries it: whitespace runs (newlines included) folded to one space."""
    return " ".join(text.split())
