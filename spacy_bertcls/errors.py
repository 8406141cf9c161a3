"""The one exception type for problems with a user's input (files, columns, settings).

The CLI prints these as a message without a traceback and the desktop app shows them in a
dialog; anything else is a bug and keeps its traceback.
"""


class BertclsError(ValueError):
    """A bad input or setting. The message names the bad value and says what to do."""
