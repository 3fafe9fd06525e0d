"""daad: build, curate, publish and use DAAD, a domain-agnostic dataset of real anomalies.

The plain Python API comes first; the `daad` command is a thin layer over it.

    from daad import Catalog, MediaStore, taxonomy
    from daad.collectors.photos import collect_photos
"""

from daad.core.catalog import Catalog
from daad.core.media_store import MediaStore
from daad.core.record import Record
from daad.core import taxonomy

__version__ = "0.1.0"
__all__ = ["Catalog", "MediaStore", "Record", "taxonomy", "__version__"]
