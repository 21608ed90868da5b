# cython: language_level=3
"""The boundary between Python and the C kernels.

Every buffer of a call is checked here, before any of them is touched: each is
a NumPy array, float32 or float64 in native byte order, aligned, C-contiguous,
writable (all but the gradient), of the param's dtype and shape, and no
written buffer overlaps any other buffer of the call. Then one C call updates
them all with the GIL released. There is no maths here.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport uintptr_t
from libc.stdlib cimport qsort

cimport numpy as cnp

cnp.import_array()

cdef extern from "fastadam.h" nogil:
    enum:
        FA_MAX_BUFS
        FA_MAX_COEF
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
        FA_TRAFFIC
        FA_NUM_ALGOS
    ctypedef struct fa_tensor:
        size_t n
        fa_dtype dtype
        void *buf[FA_MAX_BUFS]
        const double *coef
    void fa_run(fa_algo algo, const fa_tensor *tensors, size_t ntensors)
    int fa_any_nonfinite(const fa_tensor *tensors, size_t ntensors, int buf)
    void fa_set_num_threads(int n)
    int fa_get_num_threads()
    int fa_has_openmp()
    const char *fa_simd_level()

ADAM = FA_ADAM
SGD = FA_SGD
RMSPROP = FA_RMSPROP
ADAGRAD = FA_ADAGRAD
ADAMAX = FA_ADAMAX
LION = FA_LION
TRAFFIC = FA_TRAFFIC
MAX_BUFS = FA_MAX_BUFS
MAX_COEF = FA_MAX_COEF


def set_num_threads(int n):
    fa_set_num_threads(n)


def get_num_threads():
    return fa_get_num_threads()


def has_openmp():
    return bool(fa_has_openmp())


def simd_level():
    return fa_simd_level().decode()


# ---------------------------------------------------------------- buffer checks

cdef str _label(str name, Py_ssize_t index):
    return name if index < 0 else f"{name}[{index}]"


cdef cnp.ndarray _check_array(object x, str name, Py_ssize_t index, bint writable):
    """Check the properties of one buffer that do not depend on the others."""
    if not cnp.PyArray_Check(x):
        raise TypeError(
            f"{_label(name, index)} must be a numpy.ndarray, got {type(x).__name__}; "
            "fastadam updates arrays in place and never copies them"
        )
    cdef cnp.ndarray a = <cnp.ndarray>x
    cdef int t = cnp.PyArray_TYPE(a)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(
            f"{_label(name, index)} has dtype {a.dtype}; fastadam supports float32 and float64"
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


cdef int _fill(fa_tensor *t, tuple names, tuple buffers, Py_ssize_t index) except -1:
    """Check the buffers of one tensor against its param and describe them in t."""
    cdef Py_ssize_t nbuf = len(buffers), b
    if nbuf < 2 or nbuf > FA_MAX_BUFS or len(names) != nbuf:
        raise ValueError(f"expected {len(names)} buffers, got {nbuf}")
    cdef cnp.ndarray param = _check_array(buffers[0], names[0], index, True)
    cdef cnp.ndarray a
    for b in range(FA_MAX_BUFS):
        t.buf[b] = NULL
    t.n = <size_t>cnp.PyArray_SIZE(param)
    t.dtype = FA_FLOAT32 if cnp.PyArray_TYPE(param) == cnp.NPY_FLOAT32 else FA_FLOAT64
    t.buf[0] = cnp.PyArray_DATA(param)
    for b in range(1, nbuf):
        if buffers[b] is None:
            continue
        a = _check_array(buffers[b], names[b], index, b != 1)
        if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(param):
            raise TypeError(
                f"{_label(names[b], index)} has dtype {a.dtype} "
                f"but {_label(names[0], index)} has {param.dtype}"
            )
        if not cnp.PyArray_SAMESHAPE(a, param):
            raise ValueError(
                f"{_label(names[b], index)} has shape {(<object>a).shape} "
                f"but {_label(names[0], index)} has shape {(<object>param).shape}"
            )
        t.buf[b] = cnp.PyArray_DATA(a)
    return 0


cdef struct _Span:
    uintptr_t start
    uintptr_t end
    size_t tensor
    int buf


cdef int _by_start(const void *a, const void *b) noexcept nogil:
    cdef uintptr_t x = (<const _Span *>a).start, y = (<const _Span *>b).start
    return (x > y) - (x < y)


cdef int _check_disjoint(const fa_tensor *tensors, size_t ntensors, tuple names,
                         object indices) except -1:
    """Raise if a written buffer overlaps any other buffer of the call.

    Spans are sorted by start; a span overlaps an earlier one exactly when it
    starts before the furthest end seen so far. Gradients may share memory with
    each other (they are only read), nothing else may.
    """
    cdef size_t nspans = 0, i, k
    cdef int b
    cdef size_t itemsize
    cdef _Span *spans = <_Span *>PyMem_Malloc(ntensors * FA_MAX_BUFS * sizeof(_Span) + 1)
    if spans == NULL:
        raise MemoryError()
    cdef _Span furthest_any, furthest_written, other
    cdef bint have_any = False, have_written = False, clash
    try:
        for i in range(ntensors):
            itemsize = 4 if tensors[i].dtype == FA_FLOAT32 else 8
            for b in range(FA_MAX_BUFS):
                if tensors[i].buf[b] != NULL and tensors[i].n > 0:
                    spans[nspans].start = <uintptr_t>tensors[i].buf[b]
                    spans[nspans].end = spans[nspans].start + tensors[i].n * itemsize
                    spans[nspans].tensor = i
                    spans[nspans].buf = b
                    nspans += 1
        qsort(spans, nspans, sizeof(_Span), _by_start)
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
        PyMem_Free(spans)
    return 0


cdef str _span_label(_Span s, tuple names, object indices):
    return _label(names[s.buf], -1 if indices is None else indices[s.tensor])


# ------------------------------------------------------------------- the calls

class StateMissing(LookupError):
    """A param has no state, or lacks a state buffer, so it must be created first."""


cdef int _load_coef(double *dst, object coef) except -1:
    cdef Py_ssize_t n = len(coef), j
    if n > FA_MAX_COEF:
        raise ValueError(f"at most {FA_MAX_COEF} coefficients, got {n}")
    for j in range(FA_MAX_COEF):
        dst[j] = <double>coef[j] if j < n else 0.0
    return 0


def run1(int algo, tuple names, tuple buffers, tuple coef):
    """Check the buffers of one tensor and update them in one fused pass.

    names label the buffers in error messages; a None buffer is absent.
    """
    cdef fa_tensor t
    cdef double k[FA_MAX_COEF]
    if algo < 0 or algo >= FA_NUM_ALGOS:
        raise ValueError(f"unknown algorithm {algo}")
    _fill(&t, names, buffers, -1)
    _check_disjoint(&t, 1, names, None)
    _load_coef(k, coef)
    t.coef = k
    with nogil:
        fa_run(<fa_algo>algo, &t, 1)


cdef class Batch:
    """The tensors of one optimizer step, checked as they are added.

    ``run`` checks that no buffers overlap across tensors, then updates every
    tensor in a single C call. Until then nothing is modified, so a step that
    raises leaves every buffer as it was.
    """

    cdef int algo
    cdef tuple names
    cdef fa_tensor *tensors
    cdef size_t ntensors, cap
    cdef double *coefs
    cdef size_t ncoefs, coefcap
    cdef size_t *coef_of
    cdef list indices
    cdef list keep

    def __cinit__(self, int algo, tuple names):
        if algo < 0 or algo >= FA_NUM_ALGOS:
            raise ValueError(f"unknown algorithm {algo}")
        self.algo = algo
        self.names = names
        self.indices = []
        self.keep = []

    def __dealloc__(self):
        PyMem_Free(self.tensors)
        PyMem_Free(self.coefs)
        PyMem_Free(self.coef_of)

    def add_coef(self, tuple coef):
        """Store one set of coefficients; returns its id for ``add``."""
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

    def add(self, Py_ssize_t index, tuple buffers, size_t coef_id):
        """Check the buffers of the param numbered ``index`` and queue them."""
        cdef fa_tensor *grown_t
        cdef size_t *grown_c
        if coef_id >= self.ncoefs:
            raise ValueError(f"unknown coefficient set {coef_id}")
        if self.ntensors == self.cap:
            self.cap = 2 * self.cap + 4
            grown_t = <fa_tensor *>PyMem_Realloc(self.tensors, self.cap * sizeof(fa_tensor))
            if grown_t == NULL:
                raise MemoryError()
            self.tensors = grown_t
            grown_c = <size_t *>PyMem_Realloc(self.coef_of, self.cap * sizeof(size_t))
            if grown_c == NULL:
                raise MemoryError()
            self.coef_of = grown_c
        _fill(&self.tensors[self.ntensors], self.names, buffers, index)
        self.coef_of[self.ntensors] = coef_id
        self.ntensors += 1
        self.indices.append(index)
        self.keep.append(buffers)

    def add_group(self, Py_ssize_t first, list params, list grads, dict state, tuple slots,
                  object coef_id_for):
        """Queue each param of a group whose grad is not None, with its state buffers.

        Param ``j`` is numbered ``first + j``; ``state`` maps that number to the
        param's dict of state buffers and ``"step"``; ``slots`` names the state
        buffers in kernel order (None for one the group does not use), and
        ``coef_id_for(step)`` gives the coefficient set of a param's next step.
        Returns the state dicts queued. If a param has no state yet, or lacks a
        buffer, raises StateMissing and leaves the batch as it was.
        """
        cdef Py_ssize_t j, n = len(params), before = self.ntensors
        cdef list queued = []
        cdef object grad, entry, step, last_step = None
        cdef size_t coef_id = 0
        if len(grads) != n:
            raise ValueError(f"{len(grads)} grads for {n} params")
        try:
            for j in range(n):
                grad = grads[j]
                if grad is None:
                    continue
                entry = state.get(first + j)
                if entry is None:
                    raise StateMissing(first + j)
                buffers = (params[j], grad) + tuple(
                    [None if slot is None else entry[slot] for slot in slots]
                )
                step = entry["step"] + 1
                if step != last_step:
                    coef_id = coef_id_for(step)
                    last_step = step
                self.add(first + j, buffers, coef_id)
                queued.append(entry)
        except KeyError as missing:
            self._truncate(before)
            raise StateMissing(first + j) from missing
        except BaseException:
            self._truncate(before)
            raise
        return queued

    cdef _truncate(self, size_t n):
        self.ntensors = n
        del self.indices[n:]
        del self.keep[n:]

    def check(self):
        """Raise if any written buffer overlaps another buffer of the batch."""
        _check_disjoint(self.tensors, self.ntensors, self.names, self.indices)

    def grads_finite(self):
        """Whether every queued gradient is free of NaN and infinity (one read-only pass)."""
        cdef int found
        with nogil:
            found = fa_any_nonfinite(self.tensors, self.ntensors, 1)
        return not found

    def run(self):
        """Check for overlaps, then update every queued tensor in one C call."""
        cdef size_t i
        self.check()
        for i in range(self.ntensors):
            self.tensors[i].coef = self.coefs + self.coef_of[i] * FA_MAX_COEF
        with nogil:
            fa_run(<fa_algo>self.algo, self.tensors, self.ntensors)

    def __len__(self):
        return self.ntensors
