"""Where anomalies come from (installed as `daad.collectors`).

Each collector is a reader: it walks one kind of source and yields `daad.core.ingest.Item`s
(or `Skip`s); `daad.core.ingest.ingest` is the one writer into the store and catalog.

- `photos`: a folder of the user's own photos (source `photograph`)
- `datasets/`: the public IAD datasets in their publishers' layouts (`existing_dataset`)
- `search/`: image-search APIs (`online_search`)
"""
