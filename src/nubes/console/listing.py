"""The one way a console page lists a resource: one page of a Describe* call (PageNumber and
PageSize from the query string), its rows, the total and the links to the pages around it.

`items` names where the rows are in the answer, as the API nests them ("Disks", "Disk"); the
page's own query parameters (search, filters) are carried into the paging links."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from nubes.client import ClientError
from nubes.console.routing import Ctx
from nubes.console.web import PREFIX

PAGE_SIZE = 20


@dataclass
class Listing:
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    page: int = 1
    pages: int = 1
    prev_link: str = ""
    next_link: str = ""
    error: ClientError | None = None


def page_number(ctx: Ctx) -> int:
    try:
        return max(1, int(ctx.request.query.get("page", "1")))
    except ValueError:
        return 1


async def listing(
    ctx: Ctx,
    path: str,
    product: str,
    action: str,
    items: tuple[str, str],
    carried: dict[str, str] | None = None,
    **params: str,
) -> Listing:
    """One page of `action`; an API refusal is kept in `error` (shown above an empty table)."""
    number = page_number(ctx)
    result = Listing(page=number)
    try:
        answer = await ctx.call(product, action, PageSize=str(PAGE_SIZE), PageNumber=str(number), **params)
    except ClientError as error:
        result.error = error
        return result
    result.rows = list(answer.get(items[0], {}).get(items[1], []))
    result.total = int(answer.get("TotalCount", len(result.rows)))
    result.pages = max(1, -(-result.total // PAGE_SIZE))

    def link(n: int) -> str:
        return f"{PREFIX}{path}?" + urlencode({**(carried or {}), "page": n})

    result.prev_link = link(number - 1) if number > 1 else ""
    result.next_link = link(number + 1) if number < result.pages else ""
    return result
