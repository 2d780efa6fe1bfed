"""Which slots have a word starting with a prefix: bitmaps of the frequent prefixes, word
lists for the rest (projections/catalog_text.py).

A bitmap is a Python integer with bit `slot` set for each slot in it.
"""

from __future__ import annotations

import bisect
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from itertools import repeat

_AFTER = "\U0010ffff"  # sorts after every word that starts with a given prefix


def bitmap(slots: Iterable[int]) -> int:
    """The bitmap of these slots."""
    slots = slots if isinstance(slots, list) else list(slots)
    if not slots:
        return 0
    digits = bytearray(b"0") * (max(slots) + 1)  # one digit per slot, lowest first
    deque(map(digits.__setitem__, slots, repeat(49)), maxlen=0)  # 49: "1"
    return int(digits[::-1], 2)


def slots_of(bits: int) -> list[int]:
    """The slots of a bitmap, in order."""
    text = bin(bits)[:1:-1]  # least significant bit first
    out = []
    at = text.find("1")
    while at >= 0:
        out.append(at)
        at = text.find("1", at + 1)
    return out


class Prefixes:
    """Slots by the words they hold; a term matches the slots with a word it prefixes.

    Invariants: `bitmaps[p]` is exactly the slots with a word starting with `p`; every
    word is in `vocabulary`, and has `postings` unless it has a bitmap. Every prefix of a
    prefix with a bitmap has one too (from `build`), so a term without a bitmap is rare
    and its words are few: it is answered from their postings (kept until a change).
    """

    def __init__(self) -> None:
        self.vocabulary: list[str] = []  # sorted
        self.postings: dict[str, list[int]] = {}
        self.bitmaps: dict[str, int] = {}
        self._memo: dict[str, int] = {}

    def build(self, documents: Mapping[int, Iterable[str]], threshold: int) -> None:
        """All at once: a bitmap for each prefix of at least `threshold` slots.

        One walk of the sorted words (a depth-first walk of their prefix tree): a closed
        prefix hands its slots (a list while rare, a bitmap once frequent) to its parent,
        so no document's prefixes are ever listed one by one.
        """
        lists: defaultdict[str, list[int]] = defaultdict(list)
        for slot, words in documents.items():  # lists[word].append(slot), looped in C
            deque(map(list.append, map(lists.__getitem__, words), repeat(slot)), maxlen=0)
        self.vocabulary = sorted(lists)
        self.bitmaps, self._memo = {}, {}
        # The open prefixes of the current word, with their bitmaps and their slots not
        # in the bitmap (a rare prefix's slots are handed up as a list).
        prefixes: list[str] = [""]
        bitmaps: list[int] = [0]
        rare: list[list[int]] = [[]]

        def close() -> None:
            prefix, bits, slots = prefixes.pop(), bitmaps.pop(), rare.pop()
            if bits or len(slots) >= threshold:  # frequent (or a frequent one's parent)
                bits |= bitmap(slots)
                slots = []
                self.bitmaps[prefix] = bits
            bitmaps[-1] |= bits
            rare[-1].extend(slots)

        for word in self.vocabulary:
            while not word.startswith(prefixes[-1]):
                close()
            for end in range(len(prefixes[-1]) + 1, len(word) + 1):
                prefixes.append(word[:end])
                bitmaps.append(0)
                rare.append([])
            rare[-1].extend(lists[word])
        while len(prefixes) > 1:
            close()
        for prefix in self.bitmaps:
            lists.pop(prefix, None)
        self.postings = dict(lists)

    def match(self, term: str) -> int:
        """The slots with a word starting with `term`."""
        found = self.bitmaps.get(term)
        if found is not None:
            return found
        if term not in self._memo:
            bits, slots = 0, list[int]()
            at = bisect.bisect_left(self.vocabulary, term)
            words = self.vocabulary
            while at < len(words) and words[at].startswith(term):
                word = words[at]
                if word in self.bitmaps:  # covers every word it prefixes
                    bits |= self.bitmaps[word]
                    at = bisect.bisect_left(words, word + _AFTER, at)
                    continue
                slots.extend(self.postings[word])
                at += 1
            self._memo[term] = bits | bitmap(slots)
        return self._memo[term]

    def change(self, slot: int, old: Iterable[str], new: Iterable[str]) -> None:
        """A slot's words change from `old` to `new` (either may be empty)."""
        old, new = set(old), set(new)
        if old == new:
            return
        self._memo.clear()
        for word in new - old:
            if word in self.bitmaps:
                continue
            if word not in self.postings:
                self.postings[word] = []
                bisect.insort(self.vocabulary, word)
            self.postings[word].append(slot)
        for word in old - new:
            if word in self.bitmaps:
                continue
            postings = self.postings[word]
            postings.remove(slot)
            if not postings:
                del self.postings[word]
                del self.vocabulary[bisect.bisect_left(self.vocabulary, word)]
        before, after = _prefixes(old, self.bitmaps), _prefixes(new, self.bitmaps)
        bit = 1 << slot
        for prefix in before - after:
            self.bitmaps[prefix] &= ~bit
        for prefix in after - before:
            self.bitmaps[prefix] |= bit


def _prefixes(words: Iterable[str], among: Mapping[str, int]) -> set[str]:
    """The prefixes of these words that have a bitmap."""
    return {w[:end] for w in words for end in range(1, len(w) + 1) if w[:end] in among}
