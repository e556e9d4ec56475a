"""The storefront: an example product with four AI features, each depending on providers differently.

See ``README.md`` here; ``python -m examples.storefront`` serves it.
"""

from examples.storefront.app import AI, FEATURES, Settings, create_app, heuristic_tags, rank_items

__all__ = ["AI", "FEATURES", "Settings", "create_app", "heuristic_tags", "rank_items"]
