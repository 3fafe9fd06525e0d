"""Click parameter types shared by every command."""

from __future__ import annotations

import os

import click


class UserPath(click.Path):
    """click.Path that expands `~` (and `~user`) first, for every path option and argument.

    A shell expands `~` only at the start of a word, so `--out=~/x`, a quoted "~/x", or a
    value from a config file reach daad unexpanded; without this, `exists=True` refused
    them and writers created a folder literally named `~`.
    """

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            value = os.path.expanduser(value)
        return super().convert(value, param, ctx)
