"""Compressed formats through the API: options, state, state_dict, and every error path.

The class keeps each param's state in the format its group asks for, creates it
on first use, round-trips it through state_dict bit for bit, and the boundary
rejects every inconsistent buffer before anything is modified.
"""

import numpy as np
import pytest
import twin_compressed as tw

import fastadam
from fastadam import functional as F

BF16 = tw.BF16
HP = {"lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


def _grads(rng, params):
    return [(rng.standard_normal(p.shape) * 0.1).astype(p.dtype) for p in params]


def _snapshot(*arrays):
    return [(a, a.tobytes()) for a in arrays]


def _unchanged(snapshot):
    assert all(a.tobytes() == bits for a, bits in snapshot)


# ------------------------------------------------------------------ the class


def test_state_is_created_in_each_groups_format():
    rng = np.random.default_rng(0)
    embedding, weight, bias = (
        rng.standard_normal(s).astype(np.float32) for s in [(300, 20), (100, 50), (50,)]
    )
    opt = fastadam.AdamW(
        [{"params": [embedding], "state_dtype": None}, {"params": [weight, bias]}],
        state_dtype="int8", block_size=64, amsgrad=True,
    )  # fmt: skip
    opt.step(_grads(rng, [embedding, weight, bias]))
    assert opt.state[0]["exp_avg"].dtype == np.float32  # the override keeps float32
    assert opt.state[1]["exp_avg"].dtype == np.uint8
    assert opt.state[1]["max_exp_avg_sq_absmax"].shape == (-(-5000 // 64),)
    assert opt.state[2]["exp_avg"].dtype == np.float32  # 50 < min_8bit_size
    assert set(opt.state[2]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    opt2 = fastadam.Adam([weight], state_dtype="bfloat16")
    opt2.step(_grads(rng, [weight]))
    assert opt2.state[0]["exp_avg_sq"].dtype == BF16


def test_class_matches_functional_with_the_same_seed():
    rng = np.random.default_rng(1)
    p = rng.standard_normal(5000).astype(np.float32)
    q = p.copy()
    opt = fastadam.Adam([p], lr=1e-2, state_dtype="int8", seed=42)
    bufs = {"param": q}
    for k in ("exp_avg", "exp_avg_sq"):
        bufs |= {k: np.zeros(5000, np.uint8), f"{k}_absmax": np.zeros(20, np.float32)}
    for t in (1, 2, 3):
        g = _grads(rng, [p])[0]
        opt.step([g])
        F.adam(grad=g, **bufs, step=t, **HP, seed=42)
    assert p.tobytes() == q.tobytes()
    assert opt.state[0]["exp_avg"].tobytes() == bufs["exp_avg"].tobytes()


def test_master_weights_keep_float32_and_write_the_bfloat16_param():
    rng = np.random.default_rng(2)
    start = rng.standard_normal(6000).astype(np.float32)
    params = [start.astype(BF16)]
    opt = fastadam.Adam(params, lr=1e-3, master_weights=True, state_dtype="bfloat16")
    ref, m, v = start.astype(BF16).astype(np.float32), np.zeros(6000, BF16), np.zeros(6000, BF16)
    for t in (1, 2, 3):
        g = _grads(rng, params)[0]
        opt.step([g])
        F.adam(ref, g, m, v, step=t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)
    assert opt.state[0]["master_param"].tobytes() == ref.tobytes()
    assert params[0].tobytes() == ref.astype(BF16).tobytes()


def test_bfloat16_params_without_master_weights_round_stochastically():
    params = [np.ones(10_000, BF16)]
    opt = fastadam.Adam(params, lr=1e-5)
    for _ in range(200):
        opt.step([np.ones(10_000, BF16)])
    assert 0 < 1 - params[0].astype(np.float64).mean() < 4e-3  # moves, about 200 * 1e-5


@pytest.mark.parametrize("options", [
    {"state_dtype": "int8", "block_size": 128, "min_8bit_size": 0},
    {"state_dtype": "bfloat16", "amsgrad": True},
    {"master_weights": True, "state_dtype": "int8", "min_8bit_size": 0},
], ids=["int8", "bf16-amsgrad", "master-int8"])  # fmt: skip
def test_state_dict_round_trip_continues_bitwise(options):
    rng = np.random.default_rng(3)
    dtype = BF16 if options.get("master_weights") else np.float32
    start = [rng.standard_normal(s).astype(dtype) for s in [(40, 30), (7,)]]
    grads = [_grads(rng, start) for _ in range(6)]
    a = [p.copy() for p in start]
    opt_a = fastadam.Adam(a, **options)
    for g in grads:
        opt_a.step(g)
    b = [p.copy() for p in start]
    opt_b = fastadam.Adam(b, **options)
    for g in grads[:3]:
        opt_b.step(g)
    saved = opt_b.state_dict()
    c = [p.copy() for p in b]
    opt_c = fastadam.Adam(c, **options)
    opt_c.load_state_dict(saved)
    assert saved["param_groups"][0]["state_dtype"] == options["state_dtype"]
    for g in grads[3:]:
        opt_c.step(g)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, c, strict=True))
    for i in opt_a.state:
        for k, v in opt_a.state[i].items():
            assert np.asarray(v).tobytes() == np.asarray(opt_c.state[i][k]).tobytes(), k


LOAD_ERRORS = [
    ("exp_avg_sq", lambda e: e.astype(np.float32), TypeError, r"but the state format needs"),
    ("exp_avg_absmax", lambda e: e[:-1], ValueError, r"but its absmax has one per block"),
    ("exp_avg_absmax", None, ValueError, r'missing "exp_avg_absmax"'),
    ("surprise", lambda e: e, ValueError, r"unexpected entries \['surprise'\]"),
]


@pytest.mark.parametrize(("key", "value", "error", "match"), LOAD_ERRORS)
def test_load_state_dict_checks_the_format(key, value, error, match):
    rng = np.random.default_rng(4)
    p = [rng.standard_normal(5000).astype(np.float32)]
    opt = fastadam.Adam(p, state_dtype="int8")
    opt.step(_grads(rng, p))
    saved = opt.state_dict()
    entry = saved["state"][0]
    if value is None:
        del entry[key]
    else:
        entry[key] = value(entry.get(key, entry["exp_avg"]))
    before = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in opt.state[0].items()}
    with pytest.raises(error, match=match):
        opt.load_state_dict(saved)
    assert all(np.array_equal(opt.state[0][k], v) for k, v in before.items())


def test_skip_if_nonfinite_sees_bfloat16_grads():
    p = [np.zeros(100, BF16)]
    opt = fastadam.Adam(p)
    bad = np.zeros(100, BF16)
    bad[37] = np.inf
    assert opt.step([bad], skip_if_nonfinite=True) is False
    assert opt.step([np.zeros(100, BF16)], skip_if_nonfinite=True) is True


# Bad format options of the classes, with their errors (tests/test_torch_compressed.py too).
BAD_OPTIONS = [
    ({"state_dtype": "int4"}, ValueError, r"Invalid state_dtype: 'int4'"),
    ({"rounding": "up"}, ValueError, r"Invalid rounding: 'up'"),
    ({"block_size": 100}, ValueError, r"Invalid block_size: 100"),
    ({"block_size": 4096}, ValueError, r"Invalid block_size: 4096"),
    ({"block_size": 256.0}, TypeError, r"block_size must be an integer"),
    ({"min_8bit_size": -1}, ValueError, r"Invalid min_8bit_size: -1"),
    ({"seed": 2**32}, ValueError, r"Invalid seed"),
    ({"master_weights": 1}, TypeError, r"master_weights must be a bool"),
]


@pytest.mark.parametrize(("options", "error", "match"), BAD_OPTIONS)
def test_class_rejects_bad_format_options(options, error, match):
    with pytest.raises(error, match=match):
        fastadam.Adam([np.zeros(3, np.float32)], **options)


def test_compressed_state_needs_float32_or_bfloat16_params():
    opt = fastadam.Adam([np.zeros(5000)], state_dtype="bfloat16")
    with pytest.raises(TypeError, match="needs float32 or bfloat16 params"):
        opt.step([np.zeros(5000)])


def test_other_optimizers_refuse_bfloat16():
    with pytest.raises(TypeError, match="compressed formats are for Adam and AdamW"):
        fastadam.SGD([np.zeros(3, BF16)])
    p = np.zeros(3, np.float32)
    with pytest.raises(TypeError, match="compressed formats are for Adam and AdamW"):
        F.sgd(p, np.zeros(3, BF16), step=1, lr=0.1)


# -------------------------------------------------------------- buffer checks


def _buffers(n=1000, block=256):
    rng = np.random.default_rng(5)
    return {
        "param": rng.standard_normal(n).astype(np.float32),
        "grad": rng.standard_normal(n).astype(np.float32),
        "exp_avg": np.zeros(n, np.uint8),
        "exp_avg_sq": np.zeros(n, np.uint8),
        "exp_avg_absmax": np.ones(-(-n // block), np.float32),
        "exp_avg_sq_absmax": np.ones(-(-n // block), np.float32),
    }


def _set(**buffers):
    return lambda b: b.update(buffers)


def _bf16_param_with_copy(b):
    b.update(param=b["param"].astype(BF16), param_copy=np.zeros(1000, BF16))


BF16_STATE = _set(exp_avg=np.zeros(1000, BF16), exp_avg_sq=np.zeros(1000, BF16))

BAD_BUFFERS = {
    "absmax missing": (
        lambda b: b.pop("exp_avg_sq_absmax"),
        ValueError,
        r"^exp_avg_sq_absmax is required: exp_avg_sq holds 8-bit codes$",
    ),
    "absmax too short": (
        _set(exp_avg_absmax=np.ones(3, np.float32)),
        ValueError,
        r"^exp_avg_absmax has 3 values but exp_avg has 4 blocks of 256 elements$",
    ),
    "absmax float64": (
        _set(exp_avg_absmax=np.ones(4)),
        TypeError,
        r"^exp_avg_absmax has dtype float64; absmax is float32$",
    ),
    "absmax read-only": (
        lambda b: b["exp_avg_absmax"].setflags(write=False),
        ValueError,
        r"^exp_avg_absmax is read-only$",
    ),
    "absmax overlaps codes": (
        lambda b: b.update(exp_avg_absmax=b["exp_avg"][:16].view(np.float32)),
        ValueError,
        r"overlaps",
    ),
    "absmax not needed": (
        BF16_STATE,
        ValueError,
        r"^exp_avg_absmax was given but exp_avg is not a buffer of 8-bit codes$",
    ),
    "states differ": (
        _set(exp_avg_sq=np.zeros(1000, BF16)),
        TypeError,
        r"^exp_avg_sq has dtype bfloat16 but exp_avg has uint8; the state buffers",
    ),
    "uint8 grad": (
        _set(grad=np.zeros(1000, np.uint8)),
        TypeError,
        r"^grad has dtype uint8 but param has float32$",
    ),
    "float64 grad": (
        _set(grad=np.zeros(1000)),
        TypeError,
        r"^grad has dtype float64 but param has float32$",
    ),
    "copy of a bf16 param": (
        _bf16_param_with_copy,
        TypeError,
        r"a param copy is the bfloat16 image of a float32 param",
    ),
    "copy float32": (
        _set(param_copy=np.zeros(1000, np.float32)),
        TypeError,
        r"^param_copy has dtype float32 and param float32; a param copy is the bfloat16",
    ),
    "copy wrong shape": (
        _set(param_copy=np.zeros(999, BF16)),
        ValueError,
        r"^param_copy has shape \(999,\) but param has shape \(1000,\)$",
    ),
    "codes wrong shape": (
        _set(exp_avg=np.zeros(999, np.uint8)),
        ValueError,
        r"^exp_avg has shape \(999,\) but param has shape \(1000,\)$",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BUFFERS))
def test_functional_rejects_bad_compressed_buffers_and_changes_nothing(case):
    spoil, error, match = BAD_BUFFERS[case]
    bufs = _buffers()
    spoil(bufs)
    snapshot = _snapshot(*bufs.values())
    with pytest.raises(error, match=match):
        F.adam(**bufs, step=1, **HP)
    _unchanged(snapshot)


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"block_size": 100}, ValueError, r"Invalid block_size: 100"),
    ({"rounding": "down"}, ValueError, r"Invalid rounding"),
    ({"seed": -1}, ValueError, r"Invalid seed"),
])  # fmt: skip
def test_functional_rejects_bad_format_options(options, error, match):
    bufs = _buffers()
    snapshot = _snapshot(*bufs.values())
    with pytest.raises(error, match=match):
        F.adam(**bufs, step=1, **HP, **options)
    _unchanged(snapshot)


def test_a_bad_last_param_changes_no_compressed_state():
    rng = np.random.default_rng(6)
    params = [rng.standard_normal(5000).astype(np.float32) for _ in range(3)]
    opt = fastadam.Adam(params, state_dtype="int8")
    opt.step(_grads(rng, params))
    snapshot = _snapshot(
        *params, *[v for s in opt.state.values() for v in s.values() if isinstance(v, np.ndarray)]
    )
    grads = _grads(rng, params)
    grads[2] = grads[2][:-1]
    with pytest.raises(ValueError, match="shape"):
        opt.step(grads)
    _unchanged(snapshot)


# ------------------------------------------------------------------ benchmark


def test_bench_counts_the_bytes_of_each_format():
    from fastadam import _bench_compressed as bc

    assert bc.traffic("float32", "float32", "float32") == (28, 12)
    assert bc.traffic("float32", "bfloat16", "int8") == (14.0625, 6.03125)
    assert bc.traffic("master", "bfloat16", "bfloat16") == (20, 10)


def test_bench_reports_compressed_rows(monkeypatch, capsys, torch):
    from fastadam import _bench_compressed as bc
    from fastadam import bench

    monkeypatch.setattr(bc, "deepspeed_available", lambda: False)
    argv = ["--sizes", "3000", "--dtypes", "float32", "--threads", "1", "--min-time", "0.01"]
    report = bench.main([*argv, "--no-small", "--quiet"])
    rows = {r.format: r for r in report.compressed}
    nearest = {bc.label(*f, "nearest") for f in bc.NEAREST}
    peers = {p.name for p in bc.peers_available(True)}  # torchao, bitsandbytes if installed
    assert set(rows) == {bc.label(*f) for f in bc.FORMATS} | nearest | {"torch fused fp32"} | peers
    assert rows["float32/float32/float32"].vs_float32 == pytest.approx(1.0)
    assert rows["float32/bfloat16/int8"].bytes_per_element == pytest.approx(14.0625)
    assert "Compressed state" in capsys.readouterr().out


def test_bench_compares_each_state_format_with_its_fastest_peer(monkeypatch, torch):
    """A peer (here torch's AdamW standing in for an installed 8-bit optimizer) is timed
    in the same run, and the int8 rows of float32 params and grads give their ratio to
    the fastest int8 peer; the round-to-nearest int8 row carries the peer goal."""
    from fastadam import _bench_compressed as bc

    fake = [
        bc.Peer("peer A", "torch", "torch.optim:AdamW", "int8", 16.0, 6.0),
        bc.Peer("peer B", "torch", "torch.optim:Adam", "int8", 16.0, 6.0),
        bc.Peer("peer C", "not_a_module_fastadam_knows", "x:Y", "fp8", 16.0, 6.0),
    ]
    monkeypatch.setattr(bc, "PEERS", fake)
    assert bc.peers_available(False) == []
    assert [p.name for p in bc.peers_available(True)] == ["peer A", "peer B"]
    steps = bc.steps(5000, True, False, bc.peers_available(True))
    assert {"peer A", "peer B", "float32/float32/int8, nearest"} <= set(steps)
    times = dict.fromkeys(steps, 1.0) | {"peer A": 3.0, "peer B": 2.0}
    times["float32/float32/int8, nearest"] = 0.5
    rows = {r.format: r for r in bc.results(times, 10_000_000, 2)}
    assert rows["float32/float32/int8, nearest"].vs_peer == pytest.approx(4.0)  # 2.0 / 0.5
    assert rows["float32/float32/int8"].vs_peer == pytest.approx(2.0)
    assert rows["float32/bfloat16/int8"].vs_peer is None  # bfloat16 grads: not the peers' case
    assert rows["float32/float32/bfloat16"].vs_peer is None  # no bfloat16 peer
    assert (rows["peer A"].bytes_per_element, rows["peer A"].resident_bytes) == (16.0, 6.0)
    assert rows["peer A"].vs_float32 == pytest.approx(1 / 3)
    checked: list[tuple[str, float | None, float]] = []
    bc.goals(list(rows.values()), lambda *args: checked.append(args))
    assert ("float32/float32/int8, nearest state vs int8 peer, 2 thread(s)", 4.0, 1.0) in checked
    assert "x peer" in bc.format_table(list(rows.values()))


def test_peer_traffic():
    from fastadam import _bench_compressed as bc

    assert bc._peer_bytes(8, 256) == (16.0625, 6.03125)
    assert bc._peer_bytes(4, 128) == (14.125, 5.0625)


def test_state_keeps_its_format_when_the_group_changes():
    """Options take effect for new state; a checkpoint of old state still loads exactly."""
    rng = np.random.default_rng(7)
    p = [rng.standard_normal(5000).astype(np.float32)]
    opt = fastadam.Adam(p)
    opt.step(_grads(rng, p))
    opt.param_groups[0]["state_dtype"] = "int8"
    opt.step(_grads(rng, p))
    assert opt.state[0]["exp_avg"].dtype == np.float32
    saved = opt.state_dict()
    again = fastadam.Adam([p[0].copy()], state_dtype="int8")
    again.load_state_dict(saved)
    assert again.state[0]["exp_avg"].tobytes() == opt.state[0]["exp_avg"].tobytes()


def test_new_state_takes_the_new_options_and_old_state_keeps_its_format():
    """A param first stepped after the options changed gets state in the new format, in
    the same step as a param whose older state stays as it was (no absmax is added)."""
    rng = np.random.default_rng(8)
    p = [rng.standard_normal(5000).astype(np.float32) for _ in range(2)]
    opt = fastadam.Adam(p)
    opt.step([_grads(rng, p)[0], None])
    opt.param_groups[0]["state_dtype"] = "int8"
    opt.step(_grads(rng, p))
    assert set(opt.state[0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert opt.state[0]["exp_avg"].dtype == np.float32
    assert opt.state[1]["exp_avg"].dtype == np.uint8
    assert opt.state[1]["exp_avg_absmax"].shape == (20,)


@pytest.mark.parametrize(
    "change",
    [{"state_dtype": None}, {"state_dtype": "bfloat16"}, {"block_size": 512}],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)  # fmt: skip
def test_8bit_state_cannot_change_format_and_says_how_to_go_on(change):
    """8-bit state needs its format and block size: a group changed under it raises,
    naming the state and both ways on, and changes nothing; either way then works."""
    rng = np.random.default_rng(9)
    p = [rng.standard_normal(5000).astype(np.float32)]
    opt = fastadam.Adam(p, state_dtype="int8")
    opt.step(_grads(rng, p))
    before = [p[0].copy(), *(v.copy() for k, v in opt.state[0].items() if k != "step")]
    opt.param_groups[0].update(change)
    match = r'state\[0\] holds 8-bit codes in blocks of 256 .* "int8" and block_size to 256.*del'
    with pytest.raises(ValueError, match=match):
        opt.step(_grads(rng, p))
    after = [p[0], *(v for k, v in opt.state[0].items() if k != "step")]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(after, before, strict=True))
    assert opt.state[0]["step"] == 1
    opt.param_groups[0].update(state_dtype="int8", block_size=256)
    opt.step(_grads(rng, p))
    assert opt.state[0]["step"] == 2
    opt.param_groups[0].update(change)
    del opt.state[0]
    opt.step(_grads(rng, p))
    assert opt.state[0]["step"] == 1
    assert opt.state[0]["exp_avg"].dtype != np.uint8 or "block_size" in change


def test_8bit_state_in_one_block_keeps_the_real_error():
    """One block of 8-bit state fits any block size at least as large: a bad grad then
    raises its own error, not a format change."""
    p = [np.ones(100, np.float32)]
    opt = fastadam.Adam(p, state_dtype="int8", min_8bit_size=0)
    opt.step([np.ones(100, np.float32)])
    before = [p[0].copy(), *(v.copy() for k, v in opt.state[0].items() if k != "step")]
    with pytest.raises(ValueError, match="grad") as caught:
        opt.step([np.ones(99, np.float32)])
    assert "8-bit" not in str(caught.value)
    after = [p[0], *(v for k, v in opt.state[0].items() if k != "step")]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(after, before, strict=True))
