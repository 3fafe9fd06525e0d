"""Adapters for the public IAD datasets, one module each, in their publishers' on-disk layouts."""
