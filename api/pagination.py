"""Lists: the page parameters every list route takes, and the one page shape they answer."""

from __future__ import annotations

from typing import Generic, TypeVar

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
