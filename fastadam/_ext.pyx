# cython: language_level=3
"""The boundary between Python and the C kernels.

Every buffer of a call is checked here, before any of them is touched: each is
a NumPy array, float32 or float64 in native byte order, aligned, C-contiguous,
writable (all but the gradient), of the param's dtype and shape, and no
written buffer overlaps any other buffer of the call. Then one C call updates
them all with the GIL released from 4 096 elements (a shorter loop takes a
microsecond or two, and with another thread waiting for the GIL, taking it back
could take far longer than that). There is no maths here.

Compressed formats (algorithms with compressed kernels, see fastadam.h): the
param and grad may also be bfloat16 (ml_dtypes), the state buffers (all alike)
float32, bfloat16 or uint8 8-bit codes, each code buffer with its float32
absmax, one per block; a float32 param may also write a bfloat16 param_copy.
A buffers tuple then continues, after the FA_MAX_BUFS main buffers, with the
absmax of each state buffer and the param copy.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.pycapsule cimport PyCapsule_GetPointer
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy

cimport numpy as cnp

import ml_dtypes
import numpy as np

cnp.import_array()

cdef int _NPY_BFLOAT16 = np.dtype(ml_dtypes.bfloat16).num

cdef extern from "fastadam.h" nogil:
    enum:
        FA_MAX_BUFS
        FA_MAX_STATE
        FA_MAX_COEF
    ctypedef enum fa_store:
        FA_STORE_F32
        FA_STORE_BF16
        FA_STORE_Q8
    ctypedef struct fa_qsearch:
        uint32_t binade[32]
        uint32_t bucket[2][256]
    ctypedef struct fa_qmap:
        float value[256]
        uint32_t zero
        fa_qsearch search[2]
    ctypedef struct fa_format:
        fa_store param
        fa_store grad
        fa_store state
        int stochastic
        size_t block
        const fa_qmap *qmap[2]
    ctypedef enum fa_dtype:
        FA_FLOAT32
        FA_FLOAT64
    ctypedef enum fa_algo:
        FA_ADAM
        FA_SGD
        FA_RMSPROP
        FA_ADAGRAD
        FA_ADAMAX
        FA_LION
        FA_NADAM
        FA_RADAM
        FA_RPROP
        FA_TRAFFIC
        FA_NUM_ALGOS
    ctypedef struct fa_tensor:
        size_t n
        fa_dtype dtype
        void *buf[FA_MAX_BUFS]
        const double *coef
        const fa_format *format
        float *absmax[FA_MAX_STATE]
        uint16_t *param_copy
        uint32_t key
    void fa_run(fa_algo algo, const fa_tensor *tensors, size_t ntensors, int nthreads)
    int fa_has_compressed(fa_algo algo)
    unsigned fa_required_buffers(fa_algo algo)
    uint32_t fa_rounding_key(uint32_t seed, uint64_t tensor, uint64_t step)
    void fa_q8_encode(const fa_qmap *q, const float *x, size_t n, uint8_t *codes)
    int fa_any_nonfinite(const fa_tensor *tensors, size_t ntensors, int buf, int nthreads)
    void fa_set_num_threads(int n)
    int fa_get_num_threads()
    int fa_has_openmp()
    const char *fa_simd_level()
    const char *fa_q8_lookups()
    void fa_q8_set_byte_tables(int enable)
    void fa_qmap_init(fa_qmap *q)

ADAM = FA_ADAM
SGD = FA_SGD
RMSPROP = FA_RMSPROP
ADAGRAD = FA_ADAGRAD
ADAMAX = FA_ADAMAX
LION = FA_LION
NADAM = FA_NADAM
RADAM = FA_RADAM
RPROP = FA_RPROP
TRAFFIC = FA_TRAFFIC
MAX_BUFS = FA_MAX_BUFS
MAX_STATE = FA_MAX_STATE
MAX_COEF = FA_MAX_COEF

# A buffers tuple: the main buffers, the absmax of each state buffer, the param copy.
cdef enum:
    _ABSMAX = FA_MAX_BUFS
    _COPY = FA_MAX_BUFS + FA_MAX_STATE
    _ALL_BUFS = FA_MAX_BUFS + FA_MAX_STATE + 1
    _MAX_BLOCK = 2048  # FA_MAX_BLOCK in kernels.h

ALL_BUFS = _ALL_BUFS

# The 8-bit code maps (signed, unsigned), set once by fastadam._formats.
cdef fa_qmap _maps[2]
cdef bint _maps_set[2]


cdef int _set_search(fa_qsearch *s, object binades, object buckets) except -1:
    cdef cnp.ndarray n = np.ascontiguousarray(binades, np.uint32)
    cdef cnp.ndarray b = np.ascontiguousarray(buckets, np.uint32)
    if n.size != 32 or b.size != 512:
        raise ValueError("a search table has 32 binades and 2x256 buckets")
    memcpy(s.binade, cnp.PyArray_DATA(n), 32 * sizeof(uint32_t))
    memcpy(s.bucket, cnp.PyArray_DATA(b), 512 * sizeof(uint32_t))
    return 0


def set_code_map(int number, object values, int zero, object nearest_binades,
                 object nearest_buckets, object floor_binades, object floor_buckets):
    """Hand the kernels map ``number`` (0: signed, 1: unsigned) and its two search
    tables (fastadam._formats.search_table): for the nearest code and for the code
    at or below a magnitude."""
    cdef cnp.ndarray v = np.ascontiguousarray(values, np.float32)
    if number not in (0, 1) or v.size != 256 or not 0 <= zero < 256:
        raise ValueError("a code map has 256 values and the code of zero")
    memcpy(_maps[number].value, cnp.PyArray_DATA(v), 256 * sizeof(float))
    _maps[number].zero = zero
    _set_search(&_maps[number].search[0], nearest_binades, nearest_buckets)
    _set_search(&_maps[number].search[1], floor_binades, floor_buckets)
    fa_qmap_init(&_maps[number])
    _maps_set[number] = True


def q8_encode(int number, object x, object codes):
    """Write into ``codes`` the nearest codes of ``x`` under map ``number`` (0: signed,
    1: unsigned): the kernels' exact search, for tests and format conversions."""
    cdef cnp.ndarray a = _check_array(x, "x", -1, False)
    cdef cnp.ndarray c = _check_array(codes, "codes", -1, True)
    if cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 or cnp.PyArray_TYPE(c) != cnp.NPY_UINT8:
        raise TypeError("x must be float32 and codes uint8")
    if cnp.PyArray_SIZE(a) != cnp.PyArray_SIZE(c) or number not in (0, 1):
        raise ValueError("x and codes must have one size, and number be 0 or 1")
    if not _maps_set[number]:
        raise RuntimeError("the 8-bit code maps are not set (fastadam._formats sets them)")
    with nogil:
        fa_q8_encode(&_maps[number], <const float *>cnp.PyArray_DATA(a),
                     <size_t>cnp.PyArray_SIZE(a), <uint8_t *>cnp.PyArray_DATA(c))


def set_num_threads(int n):
    fa_set_num_threads(n)


def get_num_threads():
    return fa_get_num_threads()


def has_openmp():
    return bool(fa_has_openmp())


def simd_level():
    return fa_simd_level().decode()


def q8_lookups():
    return fa_q8_lookups().decode()


def set_byte_tables(bint enable):
    """Let the 8-bit kernels use byte tables where the CPU has them (tests switch them off)."""
    fa_q8_set_byte_tables(enable)


# ---------------------------------------------------------------- buffer checks
#
# A buffer is read into a _Buf (its memory, NumPy type number and size) by one of
# two readers: NumPy arrays (_check_array) and, for fastadam.torch, torch tensors
# (_read_tensor); every check that relates buffers to each other is then shared.

# DLPack's tensor description (dlpack.h, v0.8 and later), as torch exports it.
cdef extern from *:
    """
    typedef struct { int32_t device_type; int32_t device_id; } fa_DLDevice;
    typedef struct { uint8_t code; uint8_t bits; uint16_t lanes; } fa_DLDataType;
    typedef struct {
        void *data;
        fa_DLDevice device;
        int32_t ndim;
        fa_DLDataType dtype;
        int64_t *shape;
        int64_t *strides;
        uint64_t byte_offset;
    } fa_DLTensor;
    """
    ctypedef struct fa_DLDevice:
        int32_t device_type
    ctypedef struct fa_DLDataType:
        uint8_t code
        uint8_t bits
        uint16_t lanes
    ctypedef struct fa_DLTensor:
        void *data
        fa_DLDevice device
        int32_t ndim
        fa_DLDataType dtype
        int64_t *shape
        int64_t *strides
        uint64_t byte_offset

cdef enum:
    _MAX_DIMS = 64  # of a tensor read through DLPack (torch's limit too)
    _DL_CPU = 1
    _DL_UINT = 1
    _DL_FLOAT = 2
    _DL_BFLOAT = 4

cdef struct _Buf:
    char *data
    int type
    size_t n
    int ndim  # tensors: the shape, for comparison with the param's
    int64_t dims[_MAX_DIMS]

cdef struct _Count:  # a step count tensor, to increment after a run
    char *data
    int type

# Tensors: the exact classes taken and the DLPack export, given by fastadam.torch
# (set_tensor_types); this module never imports torch.
cdef tuple _tensor_classes = ()
cdef object _to_dlpack = None
cdef object _BFLOAT16_TENSOR = None  # the torch dtype read as bfloat16


def set_tensor_types(tuple classes, object to_dlpack, object bfloat16):
    """Let batches with ``tensors=True`` read torch tensors: ``classes`` are the exact
    classes accepted (subclasses, such as DTensor, are the caller's to unwrap),
    ``to_dlpack`` exports a tensor's description (torch.utils.dlpack.to_dlpack) and
    ``bfloat16`` is torch's bfloat16 dtype."""
    global _tensor_classes, _to_dlpack, _BFLOAT16_TENSOR
    _tensor_classes = classes
    _to_dlpack = to_dlpack
    _BFLOAT16_TENSOR = bfloat16


cdef str _label(str name, Py_ssize_t index):
    return name if index < 0 else f"{name}[{index}]"


cdef str _type_name(object x):
    return "None" if x is None else type(x).__name__


cdef cnp.ndarray _check_array(object x, str name, Py_ssize_t index, bint writable):
    """Check the properties of one buffer that do not depend on the others."""
    if not cnp.PyArray_Check(x):
        raise TypeError(
            f"{_label(name, index)} must be a numpy.ndarray, not {_type_name(x)}; "
            "fastadam updates arrays in place and never copies them"
        )
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int t = cnp.PyArray_TYPE(a)
    if _store(t) < 0 and t != cnp.NPY_FLOAT64:
        raise TypeError(
            f"{_label(name, index)} has dtype {a.dtype}; fastadam supports float32 and float64 "
            "(and, in compressed formats, bfloat16 and uint8 8-bit codes)"
        )
    if not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{_label(name, index)} has dtype {a.dtype.str}, not in native byte order")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(
            f"{_label(name, index)} is not C-contiguous; an update of a copy would be lost, "
            "so fastadam only accepts contiguous arrays"
        )
    if not cnp.PyArray_ISALIGNED(a):
        raise ValueError(f"{_label(name, index)} is not aligned to its dtype")
    if writable and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{_label(name, index)} is read-only")
    return a


cdef int _dl_type(fa_DLDataType t):
    """The NumPy type number of a DLPack dtype fastadam reads, or -1."""
    if t.lanes != 1:
        return -1
    if t.code == _DL_FLOAT:
        return cnp.NPY_FLOAT32 if t.bits == 32 else cnp.NPY_FLOAT64 if t.bits == 64 else -1
    if t.code == _DL_BFLOAT and t.bits == 16:
        return _NPY_BFLOAT16
    if t.code == _DL_UINT and t.bits == 8:
        return cnp.NPY_UINT8
    return -1


cdef int _read_tensor(object x, str name, Py_ssize_t index, _Buf *out) except -1:
    """Check a torch tensor as _check_array checks an array, and read its memory, dtype
    and shape from its DLPack description (one call into torch for all of them)."""
    if type(x) not in _tensor_classes:
        raise TypeError(f"{_label(name, index)} must be a torch.Tensor, not {_type_name(x)}")
    try:
        capsule = _to_dlpack(x)
    except Exception as error:  # sparse, meta, ...: torch says why
        raise ValueError(f"{_label(name, index)} cannot be updated in place: {error}") from None
    cdef fa_DLTensor *t = <fa_DLTensor *>PyCapsule_GetPointer(capsule, "dltensor")
    if t.device.device_type != _DL_CPU:
        raise ValueError(f"{_label(name, index)} is on {x.device}; fastadam updates CPU memory")
    out.type = _dl_type(t.dtype)
    if out.type < 0:
        raise TypeError(
            f"{_label(name, index)} has dtype {x.dtype}; fastadam supports float32 and float64 "
            "(and, in compressed formats, bfloat16 and uint8 8-bit codes)"
        )
    if t.ndim < 0 or t.ndim > _MAX_DIMS:
        raise ValueError(f"{_label(name, index)} has {t.ndim} dimensions")
    cdef int d
    cdef int64_t expected = 1
    cdef size_t n = 1
    out.ndim = t.ndim
    for d in range(t.ndim - 1, -1, -1):
        out.dims[d] = t.shape[d]
        if t.strides != NULL and t.shape[d] != 1 and t.strides[d] != expected:
            raise ValueError(f"{_label(name, index)} is not contiguous")
        expected *= t.shape[d]
        n *= <size_t>t.shape[d]
    out.n = n
    cdef uintptr_t address = <uintptr_t>t.data + <uintptr_t>t.byte_offset
    if n > 0 and (t.data == NULL or address % _type_size(out.type) != 0):
        raise ValueError(f"{_label(name, index)} has no aligned memory of its own")
    out.data = <char *>address
    return 0


cdef int _read(object x, str name, Py_ssize_t index, bint writable, bint tensors,
               _Buf *out) except -1:
    """Check one buffer on its own (array or tensor) and describe its memory in out."""
    if tensors:
        return _read_tensor(x, name, index, out)
    cdef cnp.ndarray a = _check_array(x, name, index, writable)
    out.data = <char *>cnp.PyArray_DATA(a)
    out.type = cnp.PyArray_TYPE(a)
    out.n = <size_t>cnp.PyArray_SIZE(a)
    return 0


cdef size_t _type_size(int typenum):
    if typenum == cnp.NPY_FLOAT64:
        return 8
    return 1 if typenum == cnp.NPY_UINT8 else 2 if typenum == _NPY_BFLOAT16 else 4


cdef int _store(int typenum):
    """The storage (FA_STORE_*) of a compressed buffer of this NumPy type, or -1."""
    if typenum == cnp.NPY_FLOAT32:
        return FA_STORE_F32
    if typenum == _NPY_BFLOAT16:
        return FA_STORE_BF16
    if typenum == cnp.NPY_UINT8:
        return FA_STORE_Q8
    return -1


cdef bint _same_dims(const _Buf *a, const _Buf *b):
    if a.ndim != b.ndim:
        return False
    for d in range(a.ndim):
        if a.dims[d] != b.dims[d]:
            return False
    return True


cdef int _check_shape(object x, object param, tuple names, Py_ssize_t b, Py_ssize_t index,
                      const _Buf *mine, const _Buf *params) except -1:
    """Raise unless buffer b has the param's shape (tensors: as read, in mine and params)."""
    cdef bint same
    if mine != NULL:
        same = _same_dims(mine, params)
    else:
        same = cnp.PyArray_SAMESHAPE(<cnp.ndarray>x, <cnp.ndarray>param)
    if not same:
        raise ValueError(
            f"{_label(names[b], index)} has shape {tuple(x.shape)} "
            f"but {_label(names[0], index)} has shape {tuple(param.shape)}"
        )
    return 0


cdef str _name(tuple names, Py_ssize_t b):
    return names[b] if b < len(names) else f"buffer {b}"


cdef unsigned _required(int algo):
    """The buffers a call of algo needs: the kernel's (fa_required_buffers), param and grad."""
    return fa_required_buffers(<fa_algo>algo) | 3U


cdef int _fill(fa_tensor *t, fa_format *f, tuple names, tuple buffers, Py_ssize_t index,
               int algo, object spec, uint64_t step, bint tensors, unsigned required) except -1:
    """Check the buffers of one tensor against its param and describe them in t.

    Every buffer in the mask ``required`` (bit b: buffers[b]) must be there, as an
    array (or, with ``tensors``, a tensor). A compressed tensor (a bfloat16 or uint8
    buffer, or a mix of float32 and bfloat16, or an absmax or param copy given) is
    described in f as well.
    """
    cdef Py_ssize_t nbuf = len(buffers), b, first_state = -1
    cdef _Buf bufs[FA_MAX_BUFS]
    if nbuf < 1 or nbuf > _ALL_BUFS or nbuf > len(names):
        raise ValueError(f"expected {len(names)} buffers, got {nbuf}")
    _read(buffers[0], names[0], index, True, tensors, &bufs[0])
    param = buffers[0]
    cdef int ptype = bufs[0].type, typ
    cdef bint compressed = ptype == _NPY_BFLOAT16
    if ptype == cnp.NPY_UINT8:
        raise TypeError(
            f"{_label(names[0], index)} has dtype uint8; fastadam supports float32 and float64 "
            "(and bfloat16) params"
        )
    for b in range(FA_MAX_BUFS):
        t.buf[b] = NULL
    for b in range(FA_MAX_STATE):
        t.absmax[b] = NULL
    t.param_copy = NULL
    t.format = NULL
    t.key = 0
    t.n = bufs[0].n
    t.dtype = FA_FLOAT64 if ptype == cnp.NPY_FLOAT64 else FA_FLOAT32
    t.buf[0] = bufs[0].data
    for b in range(1, FA_MAX_BUFS):
        x = buffers[b] if b < nbuf else None
        if x is None:
            if required >> b & 1:
                kind = "torch.Tensor" if tensors else "numpy.ndarray"
                raise TypeError(f"{_label(_name(names, b), index)} must be a {kind}, not None")
            continue
        _read(x, names[b], index, b != 1, tensors, &bufs[b])
        typ = bufs[b].type
        if typ != ptype:
            if _store(ptype) == FA_STORE_Q8 or _store(typ) < 0 or _store(ptype) < 0 or (
                b == 1 and typ == cnp.NPY_UINT8
            ):
                raise TypeError(
                    f"{_label(names[b], index)} has dtype {x.dtype} "
                    f"but {_label(names[0], index)} has {param.dtype}"
                )
            compressed = True
        if b >= 2 and first_state < 0:
            first_state = b
        elif b >= 2 and typ != bufs[first_state].type:
            raise TypeError(
                f"{_label(names[b], index)} has dtype {x.dtype} but "
                f"{_label(names[first_state], index)} has {buffers[first_state].dtype}; "
                "the state buffers of a param share one format"
            )
        _check_shape(x, param, names, b, index, &bufs[b] if tensors else NULL, &bufs[0])
        t.buf[b] = bufs[b].data
    for b in range(_ABSMAX, nbuf):
        compressed = compressed or buffers[b] is not None
    if compressed:
        _fill_format(t, f, names, buffers, bufs, index, algo, spec, step, first_state, tensors)
    return 0


cdef int _fill_format(fa_tensor *t, fa_format *f, tuple names, tuple buffers, _Buf *bufs,
                      Py_ssize_t index, int algo, object spec, uint64_t step,
                      Py_ssize_t first_state, bint tensors) except -1:
    """Check the absmax and param copy of a compressed tensor; describe its format in f."""
    cdef Py_ssize_t nbuf = len(buffers), j
    param = buffers[0]
    cdef _Buf extra
    cdef size_t block, blocks
    if not fa_has_compressed(<fa_algo>algo):
        dtypes = ", ".join(str(x.dtype) for x in buffers[:FA_MAX_BUFS] if x is not None)
        raise TypeError(
            f"{_label(names[0], index)} and its buffers have dtypes {dtypes}; this optimizer "
            "needs one dtype, float32 or float64 (compressed formats are for Adam and AdamW)"
        )
    if spec is None:
        raise ValueError(
            "compressed buffers need a format: spec=(stochastic or None, block_size, seed)"
        )
    stochastic, block, seed = spec
    if block < 1 or block > _MAX_BLOCK or block & (block - 1):
        raise ValueError(f"block_size must be a power of two up to {_MAX_BLOCK}, got {block}")
    f.param = <fa_store>_store(bufs[0].type)
    f.grad = FA_STORE_F32 if t.buf[1] == NULL else <fa_store>_store(bufs[1].type)
    f.state = FA_STORE_F32 if first_state < 0 else <fa_store>_store(bufs[first_state].type)
    # Rounding None: stochastic into bfloat16 params and compressed state, where
    # round-to-nearest stalls (the reasons are in fastadam/_formats.py, DEFAULT_SPEC).
    if stochastic is None:
        f.stochastic = f.param == FA_STORE_BF16 or f.state != FA_STORE_F32
    else:
        f.stochastic = bool(stochastic)
    f.block = block
    f.qmap[0] = &_maps[0]
    f.qmap[1] = &_maps[1]
    if f.state == FA_STORE_Q8 and not (_maps_set[0] and _maps_set[1]):
        raise RuntimeError("the 8-bit code maps are not set (fastadam._formats sets them)")
    blocks = (t.n + block - 1) // block
    for j in range(FA_MAX_STATE):
        given = _ABSMAX + j < nbuf and buffers[_ABSMAX + j] is not None
        if f.state == FA_STORE_Q8 and t.buf[2 + j] != NULL:
            if not given:
                raise ValueError(
                    f"{_label(names[_ABSMAX + j], index)} is required: "
                    f"{_label(names[2 + j], index)} holds 8-bit codes"
                )
            x = buffers[_ABSMAX + j]
            _read(x, names[_ABSMAX + j], index, True, tensors, &extra)
            if extra.type != cnp.NPY_FLOAT32:
                raise TypeError(
                    f"{_label(names[_ABSMAX + j], index)} has dtype {x.dtype}; absmax is float32"
                )
            if extra.n != blocks:
                raise ValueError(
                    f"{_label(names[_ABSMAX + j], index)} has {extra.n} values but "
                    f"{_label(names[2 + j], index)} has {blocks} blocks of {block} elements"
                )
            t.absmax[j] = <float *>extra.data
        elif given:
            raise ValueError(
                f"{_label(names[_ABSMAX + j], index)} was given but "
                f"{_label(names[2 + j], index)} is not a buffer of 8-bit codes"
            )
    if _COPY < nbuf and buffers[_COPY] is not None:
        x = buffers[_COPY]
        _read(x, names[_COPY], index, True, tensors, &extra)
        if extra.type != _NPY_BFLOAT16 or f.param != FA_STORE_F32:
            raise TypeError(
                f"{_label(names[_COPY], index)} has dtype {x.dtype} and "
                f"{_label(names[0], index)} {param.dtype}; a param copy is the bfloat16 "
                "image of a float32 param"
            )
        _check_shape(x, param, names, _COPY, index, &extra if tensors else NULL, &bufs[0])
        t.param_copy = <uint16_t *>extra.data
    t.format = f
    t.key = fa_rounding_key(<uint32_t>seed, <uint64_t>(index if index >= 0 else 0), step)
    return 0


cdef size_t _itemsize(fa_store store) noexcept nogil:
    return 1 if store == FA_STORE_Q8 else 2 if store == FA_STORE_BF16 else 4


cdef void *_span_start(const fa_tensor *t, int b) noexcept nogil:
    if b < FA_MAX_BUFS:
        return t.buf[b]
    if b < _COPY:
        return t.absmax[b - _ABSMAX]
    return t.param_copy


cdef size_t _span_bytes(const fa_tensor *t, int b) noexcept nogil:
    cdef const fa_format *f = t.format
    if f == NULL:
        return t.n * (4 if t.dtype == FA_FLOAT32 else 8)
    if b == 0:
        return t.n * _itemsize(f.param)
    if b == 1:
        return t.n * _itemsize(f.grad)
    if b < FA_MAX_BUFS:
        return t.n * _itemsize(f.state)
    if b < _COPY:
        return (t.n + f.block - 1) // f.block * sizeof(float)
    return t.n * 2


cdef enum:
    _COUNT_BUF = -1  # the buf of a step count's span
    _STACK_SPANS = 64  # spans sorted on the stack, without an allocation (a call or two)
    _NOGIL_MIN = 4096  # elements below which a call keeps the GIL (see the module docstring)

cdef struct _Span:
    uintptr_t start
    uintptr_t end
    size_t tensor
    int buf
    size_t rank  # the order of (tensor, buffer), which breaks ties of start


cdef inline bint _before(const _Span *a, const _Span *b) noexcept nogil:
    return a.start < b.start or (a.start == b.start and a.rank < b.rank)


cdef void _sort_spans(_Span *spans, _Span *scratch, size_t n) noexcept nogil:
    """Sort spans by start, ties by rank: a natural merge sort with the comparison inline
    (qsort's callbacks cost 3 times as much). Each pass merges neighbouring runs that
    are already in order: spans listed a buffer at a time (a step's params, then its
    grads, ...: arrays mostly allocated one after another) take a pass or two."""
    cdef _Span *src = spans
    cdef _Span *dst = scratch
    cdef _Span *swap
    cdef size_t lo, mid, hi, i, j, k
    if n < 2:
        return
    while True:
        lo = 0
        while lo < n:
            mid = lo + 1
            while mid < n and not _before(&src[mid], &src[mid - 1]):
                mid += 1
            if lo == 0 and mid == n:  # one run: sorted
                if src != spans:
                    memcpy(spans, src, n * sizeof(_Span))
                return
            hi = mid + 1 if mid < n else mid
            while hi < n and not _before(&src[hi], &src[hi - 1]):
                hi += 1
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if _before(&src[j], &src[i]):
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            if i < mid:
                memcpy(dst + k, src + i, (mid - i) * sizeof(_Span))
            if j < hi:
                memcpy(dst + k, src + j, (hi - j) * sizeof(_Span))
            lo = hi
        swap = src
        src = dst
        dst = swap


cdef int _check_disjoint(const fa_tensor *tensors, size_t ntensors, tuple names,
                         object indices, const _Count *counts=NULL,
                         size_t ncounts=0) except -1:
    """Raise if a written buffer overlaps any other buffer of the call.

    Spans are sorted by start (ties in the order of tensor, then buffer, then the
    step counts); a span overlaps an earlier one exactly when it
    starts before the furthest end seen so far. Gradients may share memory with
    each other (they are only read), nothing else may. The step count tensors
    incremented after the run (``counts``) are written buffers too.
    """
    cdef size_t nspans = 0, i, k, most = ntensors * _ALL_BUFS + ncounts
    cdef int b
    cdef _Span on_stack[2 * _STACK_SPANS]
    cdef _Span *spans = on_stack
    if most > _STACK_SPANS:
        spans = <_Span *>PyMem_Malloc(2 * most * sizeof(_Span))
        if spans == NULL:
            raise MemoryError()
    cdef _Span furthest_any, furthest_written, other
    cdef bint have_any = False, have_written = False, clash
    try:
        for b in range(_ALL_BUFS):  # a buffer at a time: runs in order, for the sort
            for i in range(ntensors):
                if b >= FA_MAX_BUFS and tensors[i].format == NULL:
                    continue
                if _span_start(&tensors[i], b) != NULL and tensors[i].n > 0:
                    spans[nspans].start = <uintptr_t>_span_start(&tensors[i], b)
                    spans[nspans].end = spans[nspans].start + _span_bytes(&tensors[i], b)
                    spans[nspans].tensor = i
                    spans[nspans].buf = b
                    spans[nspans].rank = i * _ALL_BUFS + b
                    nspans += 1
        for i in range(ncounts):
            spans[nspans].start = <uintptr_t>counts[i].data
            spans[nspans].end = spans[nspans].start + (
                sizeof(float) if counts[i].type == cnp.NPY_FLOAT32 else sizeof(double)
            )
            spans[nspans].tensor = i
            spans[nspans].buf = _COUNT_BUF
            spans[nspans].rank = ntensors * _ALL_BUFS + i
            nspans += 1
        _sort_spans(spans, spans + most, nspans)
        for k in range(nspans):
            clash = False
            if have_written and furthest_written.end > spans[k].start:
                other = furthest_written
                clash = True
            elif spans[k].buf != 1 and have_any and furthest_any.end > spans[k].start:
                other = furthest_any
                clash = True
            if clash:
                raise ValueError(
                    f"{_span_label(spans[k], names, indices)} overlaps "
                    f"{_span_label(other, names, indices)} in memory; every buffer "
                    "that is updated must have memory of its own"
                )
            if not have_any or spans[k].end > furthest_any.end:
                furthest_any = spans[k]
                have_any = True
            if spans[k].buf != 1 and (not have_written or spans[k].end > furthest_written.end):
                furthest_written = spans[k]
                have_written = True
    finally:
        if spans != on_stack:
            PyMem_Free(spans)
    return 0


cdef str _span_label(_Span s, tuple names, object indices):
    if s.buf == _COUNT_BUF:
        return 'a state "step" count'
    return _label(names[s.buf], -1 if indices is None else indices[s.tensor])


# ------------------------------------------------------------------- the calls

cpdef unsigned active_mask(tuple slots):
    """The buffers a group's step needs given its state ``slots`` in kernel order (None
    for one it does not use), as ``Batch.add``'s ``required``: a feature switched on
    needs its buffer, which must not fall back to the kernel's "switched off"."""
    cdef unsigned mask = 0
    cdef Py_ssize_t k
    for k in range(len(slots)):
        if slots[k] is not None:
            mask |= 1U << (2 + k)
    return mask


class StateMissing(LookupError):
    """A param has no state, or lacks a state buffer, so it must be created first."""


cdef int _load_coef(double *dst, object coef) except -1:
    cdef Py_ssize_t n = len(coef), j
    if n > FA_MAX_COEF:
        raise ValueError(f"at most {FA_MAX_COEF} coefficients, got {n}")
    for j in range(FA_MAX_COEF):
        dst[j] = <double>coef[j] if j < n else 0.0
    return 0


cdef void _run(fa_algo algo, const fa_tensor *tensors, size_t ntensors) noexcept:
    """fa_run with the thread count read once, with the GIL (see fa_run), and the GIL
    released for the run unless the call is shorter than _NOGIL_MIN elements."""
    cdef int nthreads = fa_get_num_threads()
    cdef size_t i, total = 0
    for i in range(ntensors):
        total += tensors[i].n
    if total < _NOGIL_MIN:
        fa_run(algo, tensors, ntensors, nthreads)
        return
    with nogil:
        fa_run(algo, tensors, ntensors, nthreads)


def run1(int algo, tuple names, tuple buffers, tuple coef, object spec=None, uint64_t step=0):
    """Check the buffers of one tensor and update them in one fused pass.

    names label the buffers in error messages; a None buffer is absent.
    Compressed buffers need ``spec = (stochastic, block_size, seed)``, stochastic
    None for the default rounding; ``step`` (with the seed) keys stochastic rounding.
    """
    cdef fa_tensor t
    cdef fa_format f
    cdef double k[FA_MAX_COEF]
    if algo < 0 or algo >= FA_NUM_ALGOS:
        raise ValueError(f"unknown algorithm {algo}")
    _fill(&t, &f, names, buffers, -1, algo, spec, step, False, _required(algo))
    _check_disjoint(&t, 1, names, None)
    _load_coef(k, coef)
    t.coef = k
    _run(<fa_algo>algo, &t, 1)


cdef tuple _gather(object param, object grad, object entry, tuple slots):
    """(param, grad, then the state buffers of the slots: None for a slot that is None)."""
    cdef Py_ssize_t k, n = len(slots)
    cdef tuple out = PyTuple_New(2 + n)
    cdef object x
    for k in range(2 + n):
        if k < 2:
            x = grad if k else param
        else:
            x = None if slots[k - 2] is None else entry[slots[k - 2]]
        Py_INCREF(x)  # PyTuple_SET_ITEM takes the reference
        PyTuple_SET_ITEM(out, k, x)
    return out


cdef class Batch:
    """The tensors of one optimizer step, checked as they are added.

    ``run`` checks that no buffers overlap across tensors, then updates every
    tensor in a single C call. Until then nothing is modified, so a step that
    raises leaves every buffer as it was. With ``tensors`` the buffers are torch
    tensors (see set_tensor_types), read through their data pointers. With
    ``params_only`` each tensor is a param alone (to check params for overlaps).
    """

    cdef int algo
    cdef tuple names
    cdef bint tensor_mode
    cdef unsigned required
    cdef fa_tensor *tensors
    cdef fa_format *formats  # formats[i].block == 0: tensor i is not compressed
    cdef size_t ntensors, cap
    cdef double *coefs
    cdef size_t ncoefs, coefcap
    cdef size_t *coef_of
    cdef list indices
    cdef list keep
    cdef list counters  # tensor mode: the 0-d step counts of the queued params
    cdef _Count *counts
    cdef size_t ncounts, countcap

    def __cinit__(self, int algo, tuple names, bint tensors=False, bint params_only=False):
        if algo < 0 or algo >= FA_NUM_ALGOS:
            raise ValueError(f"unknown algorithm {algo}")
        self.algo = algo
        self.required = 1U if params_only else _required(algo)
        self.names = names
        self.tensor_mode = tensors
        self.indices = []
        self.keep = []
        self.counters = []

    def __dealloc__(self):
        PyMem_Free(self.counts)
        PyMem_Free(self.tensors)
        PyMem_Free(self.formats)
        PyMem_Free(self.coefs)
        PyMem_Free(self.coef_of)

    def add_coef(self, tuple coef):
        """Store one set of coefficients; returns its id for ``add``."""
        return self._add_coef(coef)

    def set_coef(self, size_t coef_id, tuple coef):
        """Replace the coefficients ``coef_id`` (a batch run again, at its next step)."""
        if coef_id >= self.ncoefs:
            raise ValueError(f"no coefficients {coef_id}: the batch has {self.ncoefs}")
        _load_coef(self.coefs + coef_id * FA_MAX_COEF, coef)

    cdef Py_ssize_t _add_coef(self, tuple coef) except -1:
        cdef double *grown
        if self.ncoefs == self.coefcap:
            self.coefcap = 2 * self.coefcap + 1
            grown = <double *>PyMem_Realloc(self.coefs, self.coefcap * FA_MAX_COEF * sizeof(double))
            if grown == NULL:
                raise MemoryError()
            self.coefs = grown
        _load_coef(self.coefs + self.ncoefs * FA_MAX_COEF, coef)
        self.ncoefs += 1
        return self.ncoefs - 1

    cdef int _grow(self) except -1:
        cdef size_t cap = 2 * self.cap + 4
        cdef fa_tensor *grown_t = <fa_tensor *>PyMem_Realloc(self.tensors, cap * sizeof(fa_tensor))
        if grown_t == NULL:
            raise MemoryError()
        self.tensors = grown_t
        cdef fa_format *grown_f = <fa_format *>PyMem_Realloc(self.formats, cap * sizeof(fa_format))
        if grown_f == NULL:
            raise MemoryError()
        self.formats = grown_f
        cdef size_t *grown_c = <size_t *>PyMem_Realloc(self.coef_of, cap * sizeof(size_t))
        if grown_c == NULL:
            raise MemoryError()
        self.coef_of = grown_c
        self.cap = cap
        return 0

    def add(self, Py_ssize_t index, tuple buffers, size_t coef_id, object spec=None,
            uint64_t step=0, unsigned required=0):
        """Check the buffers of the param numbered ``index`` and queue them.

        Compressed buffers need ``spec = (stochastic, block_size, seed)``, stochastic
        None for the default rounding; ``step`` is the param's step count, which keys
        stochastic rounding. ``required`` marks (bit b: buffers[b]) the buffers that
        must be there beyond those the kernel always needs: the state buffers of the
        features the group switched on (see ``active_mask``).
        """
        if coef_id >= self.ncoefs:
            raise ValueError(f"unknown coefficient set {coef_id}")
        self._add(index, buffers, coef_id, spec, step, required)

    cdef int _add(self, Py_ssize_t index, tuple buffers, size_t coef_id, object spec,
                  uint64_t step, unsigned required) except -1:
        if self.ntensors == self.cap:
            self._grow()
        self.formats[self.ntensors].block = 0
        _fill(&self.tensors[self.ntensors], &self.formats[self.ntensors], self.names, buffers,
              index, self.algo, spec, step, self.tensor_mode, self.required | required)
        self.coef_of[self.ntensors] = coef_id
        self.ntensors += 1
        self.indices.append(index)
        self.keep.append(buffers)
        return 0

    def add_group(self, Py_ssize_t first, list params, list grads, object state, tuple slots,
                  object coefficients_for, object spec=None, tuple absmax=None, object master=None,
                  bint counts=True):
        """Queue each param of a group whose grad is not None, with its state buffers.

        Param ``j`` is numbered ``first + j``; ``state`` maps that number (or, in
        tensor mode, the param itself) to the param's dict of state buffers and
        ``"step"`` (in tensor mode a 0-d tensor; none if not ``counts``); ``grads``
        are the params' grads (None in tensor mode: each param's ``.grad``).
        ``slots`` names the state buffers in kernel order (None for one the group
        does not use), and ``coefficients_for(step)`` gives the coefficients of a
        param's next step (called once for each step count the group's params are at).
        Compressed groups also give ``spec`` (see ``add``), ``absmax``, the keys of
        the state buffers' absmax (taken where the param's state has them), and
        ``master``, the key of float32 master weights: these are then the param,
        and the group's (bfloat16) param receives their copy.
        Returns the state dicts queued. If a param has no state yet, lacks a
        buffer or (tensor mode) a step count, raises StateMissing and leaves the
        batch as it was.
        """
        cdef Py_ssize_t j, n = len(params), before = self.ntensors, counted = self.ncounts
        cdef list queued = []
        cdef object grad, entry, step, param, copy, count, known, last_step = None
        cdef tuple buffers, padding = (), marks_padding = ()
        cdef dict coef_ids = {}
        cdef size_t coef_id = 0
        cdef bint compressed = absmax is not None or master is not None
        cdef bint tensors = self.tensor_mode
        cdef unsigned required = active_mask(slots)
        if grads is not None and len(grads) != n:
            raise ValueError(f"{len(grads)} grads for {n} params")
        if compressed:
            padding = (None,) * (FA_MAX_BUFS - 2 - len(slots))
            marks_padding = (None,) * (FA_MAX_STATE - len(absmax or ()))
        try:
            for j in range(n):
                param = params[j]
                grad = param.grad if grads is None else grads[j]
                if grad is None:
                    continue
                entry = state.get(param if tensors else first + j)
                if entry is None:
                    raise StateMissing(first + j)
                copy = None
                if master is not None and (
                    param.dtype == _BFLOAT16_TENSOR if tensors else (
                        cnp.PyArray_Check(param) and cnp.PyArray_TYPE(param) == _NPY_BFLOAT16
                    )
                ):
                    param, copy = entry[master], param
                buffers = _gather(param, grad, entry, slots)
                if compressed:
                    buffers += padding + tuple(
                        [None if key is None else entry.get(key) for key in absmax or ()]
                    ) + marks_padding + (copy,)
                if not counts:
                    step = 1
                elif tensors:
                    step = self._read_count(entry["step"]) + 1
                else:
                    step = entry["step"]
                    if type(step) is not int or not 0 <= step < 0xFFFFFFFFFFFFFFFF:
                        raise StateMissing(first + j)  # the front end's general path says why
                    step += 1
                if last_step is None or step != last_step:
                    known = coef_ids.get(step)
                    if known is None:
                        known = coef_ids[step] = self._add_coef(coefficients_for(step))
                    coef_id = known
                    last_step = step
                self._add(first + j, buffers, coef_id, spec, step, required)
                queued.append(entry)
        except KeyError as missing:
            self._truncate(before, counted)
            raise StateMissing(first + j) from missing
        except BaseException:
            self._truncate(before, counted)
            raise
        return queued

    cdef object _read_count(self, object count):
        """Queue a step count tensor (0-d, float32 or float64, as torch.optim keeps it) for
        the increment after the run, and return its value; StateMissing if it is not one."""
        cdef _Buf b
        cdef _Count *grown
        cdef double value
        try:
            _read_tensor(count, "step", -1, &b)
        except (TypeError, ValueError):
            raise StateMissing("step") from None
        if b.n != 1 or (b.type != cnp.NPY_FLOAT32 and b.type != cnp.NPY_FLOAT64):
            raise StateMissing("step")
        value = (<float *>b.data)[0] if b.type == cnp.NPY_FLOAT32 else (<double *>b.data)[0]
        if not 0 <= value < 2.0 ** 53:
            raise StateMissing("step")
        if self.ncounts == self.countcap:
            self.countcap = 2 * self.countcap + 4
            grown = <_Count *>PyMem_Realloc(self.counts, self.countcap * sizeof(_Count))
            if grown == NULL:
                raise MemoryError()
            self.counts = grown
        self.counts[self.ncounts].data = b.data
        self.counts[self.ncounts].type = b.type
        self.ncounts += 1
        self.counters.append(count)
        return int(value)

    def written(self):
        """The buffers the queued tensors update (params, state, absmax, param copies) and,
        in tensor mode, their step counts."""
        return [
            b for buffers in self.keep for i, b in enumerate(buffers) if i != 1 and b is not None
        ] + self.counters

    cdef _truncate(self, size_t n, size_t counted):
        self.ntensors = n
        del self.indices[n:]
        del self.keep[n:]
        self.ncounts = counted
        del self.counters[counted:]

    cdef void _link(self) noexcept:
        """Point each tensor at its coefficients and format (the arrays may have moved)."""
        cdef size_t i
        for i in range(self.ntensors):
            self.tensors[i].coef = self.coefs + self.coef_of[i] * FA_MAX_COEF
            self.tensors[i].format = &self.formats[i] if self.formats[i].block != 0 else NULL

    def check(self):
        """Raise if any written buffer overlaps another buffer of the batch."""
        self._link()
        _check_disjoint(
            self.tensors, self.ntensors, self.names, self.indices, self.counts, self.ncounts
        )

    def grads_finite(self):
        """Whether every queued gradient is free of NaN and infinity (one read-only pass)."""
        cdef int found
        cdef int nthreads = fa_get_num_threads()
        self._link()
        with nogil:
            found = fa_any_nonfinite(self.tensors, self.ntensors, 1, nthreads)
        return not found

    def run(self):
        """Check for overlaps, then update every queued tensor in one C call and add 1 to
        the step count tensors read by add_group."""
        cdef size_t i
        self.check()
        _run(<fa_algo>self.algo, self.tensors, self.ntensors)
        for i in range(self.ncounts):
            if self.counts[i].type == cnp.NPY_FLOAT32:
                (<float *>self.counts[i].data)[0] += 1
            else:
                (<double *>self.counts[i].data)[0] += 1

    def __len__(self):
        return self.ntensors
