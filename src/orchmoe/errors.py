"""One exception type for every user-facing mistake, so the CLI can print it as one clear line."""


class OrchmoeError(Exception):
    """Bad input or configuration. The message names the file, key or value at fault."""


class ConfigError(OrchmoeError, ValueError):
    """A configuration field has a bad value: the message names the field and the value."""


class DataError(OrchmoeError, ValueError):
    """A data file is malformed or too small: the message names the file and the field."""


class TrainingError(OrchmoeError, RuntimeError):
    """Training cannot continue (e.g. non-finite loss)."""
