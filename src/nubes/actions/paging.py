"""The two paging styles of ECS: PageNumber/PageSize and NextToken/MaxResults."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from nubes import errors

T = TypeVar("T")


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, number = text.partition(":")
        offset = int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        offset = -1
        prefix = ""
    if prefix != "offset" or offset < 0:
        raise errors.invalid_parameter_next_token()
    return offset


def token_page(items: Sequence[T], token: str | None, max_results: int) -> tuple[list[T], str]:
    """One page from NextToken; the next token is empty after the last page."""
    start = decode_token(token)
    page = list(items[start : start + max_results])
    end = start + len(page)
    return page, encode_token(end) if end < len(items) else ""


def either_page(items: Sequence[T], p: Mapping[str, Any], items_key: str, item_key: str,
                default_size: int = 10) -> dict[str, Any]:
    """ECS's two paging styles on one list: NextToken/MaxResults when either is given,
    else PageNumber/PageSize. The answer's paging fields and the wrapped page."""
    if p.get("MaxResults") is not None or p.get("NextToken"):
        page, next_token = token_page(items, p.get("NextToken"), p.get("MaxResults") or default_size)
        return {"NextToken": next_token, items_key: {item_key: page}}
    number, size = p.get("PageNumber") or 1, p.get("PageSize") or default_size
    return {"PageNumber": number, "PageSize": size, "NextToken": "",
            items_key: {item_key: number_page(items, number, size)}}


def number_page(items: Sequence[T], page_number: int, page_size: int) -> list[T]:
    start = (page_number - 1) * page_size
    return list(items[start : start + page_size])
