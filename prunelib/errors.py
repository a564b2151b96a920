"""The one exception type for expected user errors: the CLI prints its message in one line and exits 2."""


class UserError(Exception):
    """Bad input or state the user can fix; the message names the bad value and what is allowed."""
