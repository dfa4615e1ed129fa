"""The one exception users see: its message is a single line naming the culprit."""


class EopackError(Exception):
    """A problem the user can fix (bad config, bad file, missing object); one line, no traceback."""
