"""Image-search API collectors (one module per provider) over one shared, polite HTTP layer."""
