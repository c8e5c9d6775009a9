"""Step caching: the cache key (what it hashes), and why a step hit or missed."""

from pipeledger.caching.key import KEY_FORMAT, CacheKey, compute_cache_key
from pipeledger.caching.policy import CachePolicy

__all__ = ["KEY_FORMAT", "CacheKey", "CachePolicy", "compute_cache_key"]
