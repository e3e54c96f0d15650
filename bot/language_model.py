"""py3langid's language model in a compact in-memory form: the same answers in ~35 MB
instead of ~75 MB, loaded without the loader's transient copies (issue 18).

py3langid walks a byte-level DFA whose transition table (38,346 distinct 256-entry rows of
next states, 17-bit values) is held as 9.8 million 4-byte entries: 39 MB. Split into 16-entry
blocks, those rows share most of their blocks (55,779 distinct of 613,536), so the table here is
the distinct blocks plus, per row, where its 16 blocks are: ~6 MB. The walk visits the same
states in the same order, the feature counts and the scoring (py3langid's own, on its own
float16 weights) are unchanged, so every classification is identical; tests/test_language_model.py
checks that against py3langid's loader. Per-state lists of Python ints (row offsets, features)
become int arrays (~7 MB less). The transition table is read from the model file in chunks, so
the full 39 MB table never sits in memory, not even while loading.
"""

from __future__ import annotations

import lzma
import shutil
import tempfile
import zipfile
from array import array
from collections import Counter
from typing import IO, Any

import numpy as np
from py3langid.langid import MODEL_DIR, MODEL_FILE, RAW_FLOOR, LanguageIdentifier

#: Transition-table entries per shared block (16 is the smallest total: index plus blocks).
BLOCK = 16
_BLOCKS_PER_ROW = 256 // BLOCK
_ROWS_PER_CHUNK = 2048
_MEMBERS = {"ptc.npy", "pc.npy", "classes.npy", "nextmove.npy", "nextmove_row.npy", "out_feat.npy"}
_TYPECODES = {2: "H", 4: "I", 8: "Q"}


class CompactIdentifier(LanguageIdentifier):
    """py3langid's LanguageIdentifier over the block-shared transition table."""

    __slots__ = ("_row_blocks",)

    def _visit_counts(self, text: bytes) -> Counter[int] | None:
        """py3langid.langid.visit_counts over the block form: the same features, in order."""
        table, row_blocks, rowbase, out = (
            self.tk_nextmove,
            self._row_blocks,
            self._rowbase,
            self.tk_output,
        )
        state = 0
        indexes: list[int] = []
        append = indexes.append
        for byte in text:
            state = table[row_blocks[rowbase[state] + (byte >> 4)] + (byte & 15)]
            feature = out[state]
            if feature >= 0:
                append(feature)
        return Counter(indexes) if indexes else None

    def _raw_score(self, text: bytes) -> Any:
        # py3langid's _raw_score with the walk above.
        visits = self._visit_counts(text)
        if visits:
            return self._sparse_score(visits, self.nb_ptc)
        fill = 0.0 if self._norm_probs else RAW_FLOOR
        return np.full(len(self.nb_classes), fill, dtype=np.float32)


def _read_npy(member: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[Any]]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    if fortran:
        raise ValueError("unexpected Fortran-ordered array in the language model")
    return shape, dtype


def _shared_blocks(member: IO[bytes]) -> tuple[array[int], array[int]]:
    """The distinct BLOCK-entry blocks of the transition rows, and for each row's blocks the
    offset of its block in them; read a chunk of rows at a time."""
    shape, dtype = _read_npy(member)
    itemsize = dtype.itemsize
    entries = int(np.prod(shape))
    block_ids: dict[bytes, int] = {}
    row_blocks = array("I")
    read = 0
    while read < entries:
        count = min(_ROWS_PER_CHUNK * 256, entries - read)
        chunk = np.frombuffer(member.read(count * itemsize), dtype=dtype)
        for key in chunk.view(f"V{BLOCK * itemsize}").tolist():
            row_blocks.append(block_ids.setdefault(key, len(block_ids)) * BLOCK)
        read += count
    table = array(_TYPECODES[itemsize])
    table.frombytes(b"".join(block_ids))
    if dtype.byteorder == ">":
        table.byteswap()
    return table, row_blocks


def load_compact(model_file: str = MODEL_FILE, norm_probs: bool = True) -> LanguageIdentifier:
    """py3langid's bundled model as a CompactIdentifier; py3langid's own loader for a model
    file of another layout (e.g. another py3langid version)."""
    path = MODEL_DIR / model_file
    with tempfile.TemporaryFile(suffix=".npz") as unpacked:
        with lzma.open(path) as packed:  # as py3langid does: never all of it in memory
            shutil.copyfileobj(packed, unpacked, length=1 << 20)
        unpacked.seek(0)
        with zipfile.ZipFile(unpacked) as archive:
            if set(archive.namelist()) != _MEMBERS or not hasattr(
                LanguageIdentifier, "_sparse_score"
            ):
                return LanguageIdentifier.from_model_file(model_file, norm_probs=norm_probs)

            def small(name: str) -> Any:
                with archive.open(name) as member:
                    return np.lib.format.read_array(member)

            ptc, pc, classes = small("ptc.npy"), small("pc.npy"), small("classes.npy")
            row_of_state, out_feat = small("nextmove_row.npy"), small("out_feat.npy")
            with archive.open("nextmove.npy") as member:
                table, row_blocks = _shared_blocks(member)
    identifier = CompactIdentifier(
        ptc, pc, classes.tolist(), table, array("i", out_feat.astype(np.int32)),
        norm_probs=norm_probs, tk_row=(),
    )  # fmt: skip
    identifier.tk_row = array("I", row_of_state.astype(np.uint32))
    identifier._rowbase = array("I", (row_of_state.astype(np.uint32) * _BLOCKS_PER_ROW))
    identifier._row_blocks = row_blocks
    return identifier
