"""``portaclass train --config FILE``: the options in a TOML file.

Keys are the flags' names, with or without dashes (``batch-size``,
``batch_size``, ``lr`` or ``learning_rate``); flags given on the command line
override the file. An unknown key is an error naming it and the closest
valid one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from portaclass.errors import UsageError
from portaclass.train.options import check_option_names, flag_of, option_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _aliases() -> dict[str, str]:
    """Every spelling a key may have -> the option's field name."""
    names = {}
    for name in option_names():
        names[name] = name
        names[name.replace("_", "-")] = name
        names[flag_of(name).lstrip("-")] = name
    return names


def read_config_file(path) -> dict:
    """The options in TOML file ``path`` as ``{field name: value}``."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError.for_option("config", f"{path}: {error.strerror or error}") from None
    try:
        table = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise UsageError.for_option("config", f"{path} is not valid TOML: {error}") from None
    aliases = _aliases()
    check_option_names(table, where=str(path), aliases=aliases)
    values = {}
    for key, value in table.items():
        name = aliases[key]
        if isinstance(value, dict):
            raise UsageError.for_option("config", f"{path}: {key!r} is a table; options are plain "
                                        "keys (batch-size = 64)")
        values[name] = value
    return values
