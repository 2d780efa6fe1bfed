"""Page parameters shared by list routes (`page` from 1, `page_size` 1–100)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_PAGE_SIZE = 100


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int = Field(default=1, ge=1, le=100_000, description="page number, from 1")
    page_size: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE, description="items per page")
