"""The CLI's option lists, taken from the registries that define them (never copied here).

Choices are read on first use (`--help`, or parsing the command that has them), so
`daad status` does not import the collectors or OpenCV to list datasets or CAI modes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click


class LazyChoice(click.Choice):
    """A click.Choice whose values come from `load()` the first time they are needed."""

    def __init__(self, load: Callable[[], Sequence[str]], case_sensitive: bool = True):
        self._load, self._choices = load, None
        self.case_sensitive = case_sensitive

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:  # pyright: ignore[reportIncompatibleVariableOverride]
        self._choices = tuple(value)


def dataset_names() -> list[str]:
    from daad.collectors.datasets import ADAPTERS

    return list(ADAPTERS)


def search_providers() -> tuple[str, ...]:
    from daad.collectors.search.base import PROVIDERS

    return PROVIDERS


def cai_modes() -> tuple[str, ...]:
    from daad.synthesis.cai.poisson import MODES

    return MODES


def cai_mixed_rules() -> tuple[str, ...]:
    from daad.synthesis.cai.poisson import MIXED_RULES

    return MIXED_RULES


def cai_foregrounds() -> tuple[str, ...]:
    from daad.synthesis.cai.foreground import FOREGROUND_METHODS

    return FOREGROUND_METHODS


DATASETS = LazyChoice(dataset_names)
PROVIDERS = LazyChoice(search_providers)
MODES = LazyChoice(cai_modes)
MIXED_RULES = LazyChoice(cai_mixed_rules)
FOREGROUNDS = LazyChoice(cai_foregrounds)
