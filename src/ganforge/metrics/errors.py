"""The error type of the evaluation code."""


class EvalError(ValueError):
    """An evaluation that cannot run as asked; the message says what to do instead."""
