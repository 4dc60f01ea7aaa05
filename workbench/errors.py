"""Domain errors. The CLI turns these into click exceptions at the edge."""


class WorkbenchError(Exception):
    """A failure the user can act on; the message says what to do."""


class WorkspaceError(WorkbenchError):
    """The workspace is missing, unreadable or inconsistent."""


class UnknownClassError(WorkbenchError):
    """A label is not in the workspace taxonomy."""


class ServiceError(WorkbenchError):
    """An outside service (Label Studio, FiftyOne, the ML backend) failed or is unreachable."""
