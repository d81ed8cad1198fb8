"""What every resource page's forms share: the API parameters a form carries, and one action that
redirects (303) back to its page when the API accepts it or shows the page again with the
refusal (Code, Message, its HTTP status) when the API refuses it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nubes.client import ClientError
from nubes.console.listing import Listing
from nubes.console.routing import Ctx
from nubes.console.web import PREFIX, Page, redirect

# The pages' path IDs: what the API's resource IDs are made of (anything else is a 404).
ID = r"[A-Za-z0-9._-]{1,128}"

Refused = Callable[[ClientError], Awaitable[Page]]


def fields(ctx: Ctx, *names: str) -> dict[str, str]:
    """The form's non-empty values of these API parameters: a field left empty is not sent,
    so the API applies its own default rather than refusing an empty value."""
    form = ctx.request.form
    return {name: form[name].strip() for name in names if form.get(name, "").strip()}


async def submit(ctx: Ctx, back: str, refused: Refused, product: str, action: str, **params: str) -> Page:
    """One API call; accepted, a redirect to `back` (a console path); refused, `refused(error)`."""
    try:
        await ctx.call(product, action, **params)
    except ClientError as error:
        return await refused(error)
    return redirect(f"{PREFIX}{back}")


def rows(answer: dict[str, Any], outer: str, inner: str) -> list[dict[str, Any]]:
    """The items of a Describe* answer, nested as the API nests them (("Vpcs", "Vpc"))."""
    return list(answer.get(outer, {}).get(inner, []))


async def choices(
    ctx: Ctx, product: str, action: str, items: tuple[str, str], **params: str
) -> list[dict[str, Any]]:
    """The first 50 rows (the most every Describe* page holds) of a Describe* call, to offer in a form's select; none when refused
    (the form then offers nothing and the API's refusal of the empty choice is shown)."""
    try:
        answer = await ctx.call(product, action, PageSize="50", **params)
    except ClientError:
        return []
    return rows(answer, *items)


def render(ctx: Ctx, template: str, refused: ClientError | None, listed: Listing, **context: Any) -> Page:
    """A list page: a refused action's error (with its status) over the listing's own."""
    status = (refused.http_status or 400) if refused else 200
    return ctx.render(template, error=refused or listed.error, http_status=status, listing=listed, **context)
