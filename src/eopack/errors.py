"""The one exception users see: its message is a single line naming the culprit."""

from __future__ import annotations

import re

# ``<_io.BytesIO object at 0x7f…>``, ``<function f at 0x…>``: what a library's own message may
# hold (PIL: "cannot identify image file <_io.BytesIO object at 0x…>"); it names nothing a user
# can find, so it is dropped wherever a message is built from a library's exception.
OBJECT_REPR = re.compile(r"\s*<[^<>\n]+ at 0x[0-9a-fA-F]+>")


def plain(text: str) -> str:
    """``text`` without Python object reprs (see ``OBJECT_REPR``)."""
    return OBJECT_REPR.sub("", text)


class EopackError(Exception):
    """A problem the user can fix (bad config, bad file, missing object); one line, no traceback."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(plain(message) if isinstance(message, str) else message, *args)
