"""The GradEP scheme's error, apart from its physics so that the CLI can name it
a user's error without importing numpy's and numba's parts of the scheme."""


class GradEPError(ValueError):
    """Parameters of the GradEP scheme that cannot work (the message names the keys)."""
