"""Arrays carved from a flat buffer, without numba's ``reshape``.

The kernels carve every work array (and every weight matrix) from one flat
buffer. As ``buffer[at : at + size].reshape(shape)``, numba compiles each to a call
into its C helper, a size check that can raise and a new reference to the buffer,
and then takes and drops that reference (an atomic operation each time) wherever
the view is passed to a function that is not inlined: the one-sequence path made
about 350 such operations per call, 3 us of an 8 us training step at ``H = 2``.

:func:`view` builds the same C-contiguous view directly (a pointer, a shape and its
strides) and holds **no** reference: numba's reference counting skips it. That is
safe because every buffer carved from is an argument of the compiled call (``work``,
``theta``, ``plan``), alive until the call returns, and a view is never returned
to Python (results are fresh arrays or copies).
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

from rnnlab.kernels.compiled.math import inline


@intrinsic
def view(typingctx, buffer, at, shape):
    """``buffer.ravel()[at : at + prod(shape)]`` as a C-contiguous array of ``shape``,
    holding no reference to ``buffer`` (C-contiguous; the caller keeps ``at +
    prod(shape)`` inside it, and the view inside the compiled call)."""
    if not (isinstance(buffer, types.Array) and buffer.layout == "C"):
        return None
    if not isinstance(shape, types.BaseTuple) or not all(
        isinstance(d, types.Integer) for d in shape
    ):
        return None
    ndim = len(shape)
    result = types.Array(buffer.dtype, ndim, "C")

    def codegen(context, builder, signature, args):
        buffer_type, at_type, shape_type = signature.args
        source = make_array(buffer_type)(context, builder, args[0])
        intp = context.get_value_type(types.intp)
        offset = context.cast(builder, args[1], at_type, types.intp)
        dims = [
            context.cast(builder, d, t, types.intp)
            for d, t in zip(cgutils.unpack_tuple(builder, args[2], ndim), shape_type, strict=True)
        ]
        itemsize = context.get_abi_sizeof(context.get_data_type(result.dtype))
        strides, stride = [], intp(itemsize)
        for d in reversed(dims):  # C order: the last axis moves by one item
            strides.insert(0, stride)
            stride = builder.mul(stride, d)
        out = make_array(result)(context, builder)
        populate_array(out, data=builder.gep(source.data, [offset]), shape=dims,
                       strides=strides, itemsize=intp(itemsize), meminfo=None)  # fmt: skip
        return out._getvalue()

    return result(buffer, at, shape), codegen


@intrinsic
def borrow(typingctx, array):
    """``array`` itself, holding no reference (as :func:`view`): for the arrays an entry
    point receives, so that passing them on costs no reference counting."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, signature, args):
        source = make_array(signature.args[0])(context, builder, args[0])
        out = make_array(signature.return_type)(context, builder)
        populate_array(out, data=source.data, shape=source.shape, strides=source.strides,
                       itemsize=source.itemsize, meminfo=None)  # fmt: skip
        return out._getvalue()

    return array(array), codegen


@inline
def carve(buffer, at, shape):
    """The next ``prod(shape)`` numbers of ``buffer`` from ``at``, as an array of ``shape``,
    and where they end."""
    size = 1
    for d in shape:
        size *= d
    return view(buffer, at, shape), at + size
