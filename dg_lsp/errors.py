"""Errors whose message is meant for the user, shown without a traceback."""


class DgLspError(Exception):
    """Base class: the message says what went wrong and, where it can, what to do."""


class ModelLoadError(DgLspError):
    """A model directory could not be loaded."""


class InputError(DgLspError):
    """A request named a file, position or setting that cannot be used."""


class Cancelled(DgLspError):
    """Generation was cancelled between denoising steps."""


class EngineUnavailable(DgLspError):
    """The engine cannot answer now (a remote server is down): nothing to offer, and the user
    has been told once; the request is not cached as an empty answer."""
