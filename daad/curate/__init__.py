"""Curation of the catalog: near-duplicate hashing and search, dedupe, leakage marking, masks
(proposal, import, review in the FiftyOne App), status tables.

Imports core and collectors only."""
