"""The API versions nubes speaks, one per product: all that the client side needs of the api package
(the registry, with its parameter parsing, stays on the server side)."""

from __future__ import annotations

PRODUCT_VERSIONS = {"2014-05-26": "ecs", "2016-04-28": "vpc"}
