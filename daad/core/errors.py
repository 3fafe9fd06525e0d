"""Errors that name the item they are about, so a batch can report and skip it."""

from __future__ import annotations


class DaadError(Exception):
    """Base class of every error daad raises on purpose."""


class BadItemError(DaadError):
    """One input item (an image, a mask, a download) cannot be used.

    The message is one line: the item, then the reason. Collectors catch it, report it
    and go on with the batch.
    """

    def __init__(self, item: object, reason: str):
        self.item = str(item)
        self.reason = reason
        super().__init__(f"{self.item}: {reason}")


class BadImageError(BadItemError):
    """An image that does not decode, is truncated, or is too large to decode safely."""


class BadMaskError(BadItemError):
    """A mask of the wrong size, not binary, or not decodable."""


class LayoutError(DaadError):
    """A folder does not have the layout a collector expects (names what was expected, and where)."""


class CatalogError(DaadError):
    """The catalog cannot be used: no catalog there, damaged, from a newer daad, or not writable (says which and why)."""
