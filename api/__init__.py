"""HTTP API: Starlette routes, pydantic models at the boundary, problem+json errors."""
