"""The one exception type for bad user input.

Library code raises :class:`UserInputError` for anything a user can fix (a corrupt image,
a missing dataset file, points outside the image, a model file of the wrong kind). The
``dcme-keras`` command turns it into a one-line message on stderr and exit status 2.
The message names the problem and the fix.
"""


class UserInputError(ValueError):
    """Bad input that the user can fix; ``str(err)`` is a one-line message with the fix."""
