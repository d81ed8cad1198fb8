"""The paging of every action, in ECS's two styles, PageNumber/PageSize and NextToken/MaxResults:
their parameters, the page a request asks for, and the paging fields of the answer."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nubes import errors
from nubes.api.params import Integer, Param, String

T = TypeVar("T")

NEXT_TOKEN = String("NextToken", max_length=512)


def page_params(max_size: int = 50, default_size: int | None = 10) -> list[Param]:
    """PageNumber and PageSize. Without a default size neither has a default: the actions that
    take NextToken too tell the styles apart by what is given."""
    return [
        Integer("PageNumber", minimum=1, default=None if default_size is None else 1),
        Integer("PageSize", minimum=1, maximum=max_size, default=default_size),
    ]


def token_params(max_results: int, min_results: int = 1, default: int | None = None) -> list[Param]:
    """MaxResults and NextToken."""
    return [Integer("MaxResults", minimum=min_results, maximum=max_results, default=default), NEXT_TOKEN]


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


@dataclass(frozen=True)
class Page:
    """The slice a request asks for: `size` items from `offset`; `number` is the PageNumber,
    None in the NextToken style."""

    offset: int
    size: int
    number: int | None = None

    def of(self, items: Sequence[T]) -> list[T]:
        return list(items[self.offset : self.offset + self.size])

    def fields(self, total: int, returned: int) -> dict[str, Any]:
        """The answer's paging fields: the NextToken (empty after the last page), or PageNumber
        and PageSize (and an empty NextToken)."""
        if self.number is None:
            end = self.offset + returned
            return {"NextToken": encode_token(end) if end < total else ""}
        return {"PageNumber": self.number, "PageSize": self.size, "NextToken": ""}


def page_of(p: Mapping[str, Any], default_size: int = 10) -> Page:
    """The page a request asks for: NextToken/MaxResults when either is given, else PageNumber/PageSize."""
    if p.get("MaxResults") is not None or p.get("NextToken"):
        return Page(decode_token(p.get("NextToken")), p.get("MaxResults") or default_size)
    number, size = p.get("PageNumber") or 1, p.get("PageSize") or default_size
    return Page((number - 1) * size, size, number)


def token_page(items: Sequence[T], token: str | None, max_results: int) -> tuple[list[T], str]:
    """One page from NextToken; the next token is empty after the last page."""
    page = Page(decode_token(token), max_results)
    chosen = page.of(items)
    return chosen, page.fields(len(items), len(chosen))["NextToken"]


def either_page(
    items: Sequence[T], p: Mapping[str, Any], items_key: str, item_key: str, default_size: int = 10
) -> dict[str, Any]:
    """ECS's two paging styles on one list (see `page_of`): the answer's paging fields and the
    wrapped page."""
    page = page_of(p, default_size)
    chosen = page.of(items)
    return {**page.fields(len(items), len(chosen)), items_key: {item_key: chosen}}


def number_paged(
    items: Sequence[T],
    p: Mapping[str, Any],
    items_key: str,
    item_key: str,
    render: Callable[[T], Any] | None = None,
) -> dict[str, Any]:
    """The answer of the actions paged by PageNumber/PageSize alone: TotalCount, PageNumber,
    PageSize and the wrapped page (each item through `render`, when given)."""
    number, size = p["PageNumber"], p["PageSize"]
    chosen = Page((number - 1) * size, size, number).of(items)
    return {
        "TotalCount": len(items),
        "PageNumber": number,
        "PageSize": size,
        items_key: {item_key: [render(i) for i in chosen] if render else chosen},
    }
