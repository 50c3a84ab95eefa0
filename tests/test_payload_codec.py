"""The payload codec against the format written out from scratch.

An array payload is the msgpack extension 1 holding ``ndim`` (one byte), the
shape (``ndim`` little-endian uint32) and the values as little-endian
float64 in C order; a 0-d array is a vector of one. The reference below is
built from that description with ``struct`` and plain Python floats, not
with the codec's code, for arrays of every layout the codec may meet
(dtypes, byte orders, C and Fortran order, strided views, subclasses).
"""

from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from asyncnet.messages import decode_ext, encode_payload


def reference_ext(a: np.ndarray) -> bytes:
    """The extension's data, from the format's description."""
    shape = a.shape or (1,)
    values = [float(x) for x in np.asarray(a).ravel(order="C")]
    return (struct.pack("<B", len(shape)) + struct.pack(f"<{len(shape)}I", *shape)
            + struct.pack(f"<{len(values)}d", *values))


dtypes = st.sampled_from(["<f8", ">f8", "<f4", "<i8", ">i4", "<u2", "bool"])
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    a = draw(hnp.arrays(dtype=draw(dtypes), shape=draw(shapes),
                        elements={"allow_nan": False} if draw(st.booleans()) else None))
    layout = draw(st.sampled_from(["c", "fortran", "reversed", "strided", "matrix-like"]))
    if layout == "fortran":
        a = np.asfortranarray(a)
    elif layout == "reversed" and a.ndim:
        a = a[::-1]
    elif layout == "strided" and a.ndim:
        a = np.repeat(a, 2, axis=0)[::2]
    elif layout == "matrix-like":
        a = a.view(type("Sub", (np.ndarray,), {}))
    return a


@settings(max_examples=400, deadline=None)
@given(arrays())
def test_an_array_payload_packs_as_the_format_says(a: np.ndarray) -> None:
    ext = encode_payload(a)
    assert isinstance(ext, msgpack.ExtType)
    assert ext.code == 1
    got = bytes(ext.data)
    want = reference_ext(a)
    if np.isnan(np.asarray(a, dtype=float)).any():  # NaN bit patterns: compare as floats
        assert got[:len(want) - 8 * a.size] == want[:len(want) - 8 * a.size]
    else:
        assert got == want
    # and it packs and reads back the same (the writer's and the reader's hooks)
    back = msgpack.unpackb(msgpack.packb(a, default=encode_payload), ext_hook=decode_ext)
    assert back.dtype == np.float64 and back.flags.writeable and back.flags.owndata
    np.testing.assert_array_equal(back, np.asarray(a, dtype=float).reshape(a.shape or (1,)))


def test_a_shape_seen_once_packs_the_same_the_next_time() -> None:
    a = np.arange(6.0).reshape(2, 3)
    first, again = encode_payload(a).data, encode_payload(a + 1).data
    assert first[:9] == again[:9] == struct.pack("<B2I", 2, 2, 3)


@pytest.mark.parametrize("data, what", [
    (bytes([2]) + struct.pack("<2I", 2, 3) + bytes(8 * 5), "does not match its shape"),
    (bytes([2]) + struct.pack("<I", 2), "truncated array header"),
    (bytes([9]) + bytes(40), "dimensions refused"),
])
def test_a_malformed_array_is_refused(data: bytes, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        decode_ext(1, data)
