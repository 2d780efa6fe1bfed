"""Server-rendered seller and developer pages (Jinja2 templates, static files, page routes)."""
