"""The bottom floor: what a DAAD sample is and where it is kept (taxonomy, records, licences,
images and masks, the content-addressed media store, the SQLite catalog, the one ingest path).

Imports nothing of daad above it."""
