"""Lists: the page parameters every list route takes, and the one page shape they answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

MAX_PAGE_SIZE = 100

T = TypeVar("T")


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int = Field(default=1, ge=1, le=100_000, description="page number, from 1")
    page_size: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE, description="items per page")


class Page(BaseModel, Generic[T]):
    """`{items, total, page, page_size}`; subclass it to name the page in /openapi.json."""

    items: list[T]
    total: int
    page: int
    page_size: int

    @classmethod
    def of(cls, items: Sequence[Any], total: int, query: PageQuery) -> Self:
        """The page `query` asked for, holding `items` of `total` matches."""
        return cls.model_validate(
            {"items": items, "total": total, "page": query.page, "page_size": query.page_size}
        )
