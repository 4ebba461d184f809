"""One exception type for user mistakes: the CLI prints its message as one line and exits 1."""


class PhysicalError(Exception):
    """A problem the user can fix (bad path, unknown name, wrong run); never a bug."""
