"""bnlab's Python client: drive the API from code (`Client`) or a terminal (`bnlab`).

HTTP only (httpx): it needs none of the server's dependencies.
"""

from bnlab_client.client import ApiError, Client, Metrics, Series
from bnlab_client.config import Config, load_config

__all__ = ["ApiError", "Client", "Config", "Metrics", "Series", "load_config"]
