"""Read models built from the event log, exactly once, and the queries on them."""
