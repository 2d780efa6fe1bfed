"""eventsourcing's JSON transcoder writing the same bytes with less work per event.

Encoding an event's state was a tenth of a command's client time: the standard encoder
keeps a table of the containers it is inside (to refuse a circular reference; an event's
state holds plain values, never a cycle) and eventsourcing's hook for a UUID or a datetime
goes through a lookup that raises on a miss. `FastJSONTranscoder` skips the table and
builds the same tagged form (`{"_type_": …, "_data_": …}`) from the same registered
transcodings; what it cannot encode it refuses as eventsourcing's does. Decoding is
eventsourcing's, unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from eventsourcing.persistence import JSONTranscoder


class FastJSONTranscoder(JSONTranscoder):
    """A JSONTranscoder whose encoding gives the same bytes, faster."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = json.JSONEncoder(
            default=self._tagged,
            separators=(",", ":"),
            ensure_ascii=False,
            check_circular=False,
        )

    def _tagged(self, o: Any) -> Any:
        transcoding = self.types.get(type(o))
        if transcoding is None:
            return self._encode_obj(o)  # raises TranscodingNotRegisteredError, as before
        return {"_type_": transcoding.name, "_data_": transcoding.encode(o)}


def faster(transcoder: Any) -> Any:
    """`transcoder` as a FastJSONTranscoder with the same transcodings, if it is exactly
    eventsourcing's JSONTranscoder; else unchanged."""
    if type(transcoder) is not JSONTranscoder:
        return transcoder
    fast = FastJSONTranscoder()
    fast.types.update(transcoder.types)
    fast.names.update(transcoder.names)
    return fast
