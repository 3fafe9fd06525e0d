"""Releases: the on-disk release format, publish, the dataset card, the Hub push.

Synthesis and evaluation read releases through `daad.release.format` alone, so importing them
never loads the publishing code."""
