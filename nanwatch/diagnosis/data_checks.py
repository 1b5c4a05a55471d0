"""Data forensics: what is in the arrays a model is fed (x/y of fit/predict, consumed batches).

`profile_array(name, data, role)` turns one array-like (numpy array, pandas DataFrame/Series,
list, eager tensor: anything `np.asarray` takes) into a JSON-safe profile: per column the
NaN/+Inf/-Inf counts and first rows, min/max/mean/std over the finite values, zeros, a constant
flag, repeated sentinel values (-999, 9999, ...), extreme outliers by robust z-score
(median/MAD), and the column's scale (log10 of its typical magnitude).
`profile_warnings(profile)` turns a profile into schema-1 warnings {cause, evidence, fix}
(plus an internal "level": "warning" | "info"; info items are notes, not alarms).

Layout: axis 0 is the sample ("row"). A 2-D array has one column per feature; an array of
3 or more dims (images N,H,W,C; sequences N,T,F) has one column per entry of its last axis
(channel / feature), its statistics taken over all the other axes; a 1-D array is one column.

Thresholds (and why) -- measured on real data in tests/test_data_checks.py:
- OUTLIER_Z = 1000: robust z = |x - median| / (1.4826 * MAD). Healthy data stays far below:
  1e6 Gaussian rows reach ~5, exponential ~18, lognormal(sigma=1) ~150, one-hot/binary columns
  are skipped, image pixel columns (mostly 0) ~2 with the sparse-column fallback below.
  The seed-004 outlier (1e10 among rand*10) is z ~ 3e9. Values with 30 <= z < 1000 become an
  info note (heavy tail), not a warning.
- MAD == 0 (more than half the values equal the median: sparse / one-hot / padded columns): the
  spread is taken from the values that differ from the median (their median absolute deviation),
  so a rare 1 in a one-hot column or 255 in a mostly-black pixel column is not an outlier,
  while 1e10 in a column of small counts is.
- Unscaled input (features only, float columns, not binary): a column whose typical magnitude
  (90th percentile of |x|) is >= 1e3, or >= 1e2 while another column is >= 10**2.5 times
  smaller. Raw 0..255 images (typical ~230, all channels alike) do not warn: Keras CNNs train on
  them (measured, tests/scenarios_diagnosis.py f08); they get an info note suggesting Rescaling.
  Integer-typed arrays are not judged for scale (token ids for an Embedding are not "unscaled").
  Targets are never "unscaled": a large but finite loss on price-like targets is healthy.
- Placeholders: a value from SENTINELS that appears >= 2 times at the column's min or max and is
  set apart from the other values (a gap >= half their range, or a negative marker in an
  otherwise non-negative column). Uniform integers 0..9999 (9999 is just the max) do not match.
- Constant columns are info, not warnings: one-hot/bias columns and constant batches are common
  and Keras' BatchNormalization/Normalization and sklearn's StandardScaler all guard the zero
  std (measured: zoo p06 stays finite). The diagnosis rules raise zero_variance_normalization
  only when the first non-finite op is a division (or Rsqrt) and a constant column is there.
"""

from __future__ import annotations

import math
import time

import numpy as np

OUTLIER_Z = 1000.0          # robust z at/above which a value is an outlier warning
OUTLIER_Z_INFO = 30.0       # robust z at/above which a value is noted (heavy tail)
UNSCALED_ABS = 3.0          # log10 typical magnitude at/above which a feature is unscaled
UNSCALED_REL_MIN = 2.0      # ... or at/above this, with another feature this many orders smaller:
UNSCALED_SPREAD = 2.5
IMAGE_INFO_SCALE = 2.0      # typical magnitude >= 100 (and < 1e3): note "consider Rescaling"
SENTINELS = (-99.0, -999.0, -9999.0, -99999.0, -999999.0, 999.0, 9999.0, 99999.0, 999999.0, 9999999.0)
SAMPLE_ROWS = 50_000        # rows of the deterministic strided sample used for median/MAD/std/percentiles
FIRST_ROWS = 5              # how many row indices a profile keeps per finding
MAX_COLUMNS_LISTED = 256    # wider arrays list only the columns with findings

FEATURE_ROLES = ("features", "batch_features")
TARGET_ROLES = ("targets", "batch_targets")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _f(v):
    """A JSON-safe float (None for nan/inf/None)."""
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(v) -> str:
    """A number for evidence text: 1e10 -> '1e+10', 5.0 -> '5', 0.123456 -> '0.1235'."""
    if v is None:
        return "?"
    if isinstance(v, str):
        return v
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    txt = f"{v:.4g}"
    if "e" in txt:  # 1e+10 -> 1e10, 2.582e+09 -> 2.58e9, 1e-07 -> 1e-7
        mant, exp = f"{v:.3g}".split("e")
        txt = f"{mant}e{int(exp)}"
    return txt


def _to_array(data):
    """(2-D-able numpy array, column names or None, row labels or None, kind, non-numeric names)."""
    kind = type(data).__name__
    names, labels, non_numeric = None, None, []
    mod = type(data).__module__ or ""
    if mod.startswith("pandas"):
        import pandas as pd  # only when the caller already has pandas objects
        if isinstance(data, pd.Series):
            data = data.to_frame(name=data.name if data.name is not None else "0")
        if isinstance(data, pd.DataFrame):
            kind = "dataframe" if kind == "DataFrame" else "series"
            numeric = []
            for c in data.columns:
                dt = data[c].dtype
                if pd.api.types.is_bool_dtype(dt) or pd.api.types.is_numeric_dtype(dt):
                    numeric.append(c)
                else:
                    non_numeric.append(str(c))
            if not isinstance(data.index, pd.RangeIndex) or data.index.start != 0 or data.index.step != 1:
                labels = data.index
            names = [str(c) for c in numeric]
            sub = data[numeric]
            try:
                arr = sub.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                arr = np.asarray(sub, dtype=np.float64)
            return arr, names, labels, kind, non_numeric
    if hasattr(data, "numpy") and callable(data.numpy):  # eager tensor / variable
        data = data.numpy()
        kind = "tensor"
    arr = np.asarray(data)
    if arr.dtype.kind == "O":
        try:
            arr = np.array(data, dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.array([[x if x is not None else np.nan for x in row] if isinstance(row, (list, tuple))
                            else (row if row is not None else np.nan) for row in data], dtype=np.float64)
    return arr, names, labels, kind, non_numeric


def _as_float(arr: np.ndarray) -> np.ndarray:
    """The array to profile. Integer arrays stay as they are (no NaN/Inf possible; every reduction
    below accumulates in float64): a uint8 image set is not copied into a float array 8x its size."""
    if arr.dtype.kind in "fiu":
        return arr
    if arr.dtype.kind == "b":
        return arr.view(np.uint8)
    if arr.dtype.kind == "c":
        return np.abs(arr)
    raise TypeError(f"non-numeric dtype {arr.dtype}")


def _rows_where(mask_col: np.ndarray, k: int, per_row: int) -> list:
    idx = np.flatnonzero(mask_col)
    if per_row > 1:
        idx = np.unique(idx // per_row)
    return [int(i) for i in idx[:k]]


# --------------------------------------------------------------------------------------------
# the profile
# --------------------------------------------------------------------------------------------
def profile_array(name: str, data, role: str, max_rows=None, *, batch=None) -> dict:
    """Profile one array-like. `role`: "features" | "targets" | "batch_features" | "batch_targets".

    `max_rows`: profile only the first `max_rows` rows (axis 0); the profile says so
    ("rows_profiled"). `batch`: the batch index for consumed batches.
    Never raises on odd data: a profile with "error" set comes back instead.
    """
    t0 = time.perf_counter()
    prof = {"name": str(name), "role": role, "batch": batch, "kind": None, "shape": None, "dtype": None,
            "rows": 0, "rows_profiled": 0, "n_columns": 0, "layout": None, "integer_dtype": False,
            "columns": [], "columns_listed": "all", "non_numeric_columns": [],
            "nan": 0, "pos_inf": 0, "neg_inf": 0, "rows_with_nonfinite": 0, "nonfinite_rows": [],
            "constant_columns": [], "scale_max": None, "scale_min": None,
            "row_labels": None, "error": None, "seconds": None}
    try:
        arr, names, labels, kind, non_numeric = _to_array(data)
        prof["kind"] = kind
        prof["non_numeric_columns"] = non_numeric
        prof["shape"] = [int(s) for s in arr.shape]
        prof["dtype"] = str(arr.dtype)
        prof["integer_dtype"] = arr.dtype.kind in "iub"
        x = _as_float(arr)
    except Exception as exc:  # ragged lists, strings, ...: say so, do not fail the run
        prof["error"] = f"{type(exc).__name__}: {exc}"
        prof["seconds"] = round(time.perf_counter() - t0, 4)
        return prof

    if x.ndim == 0:
        x = x.reshape(1, 1)
        prof["layout"] = "scalar"
    elif x.ndim == 1:
        x = x.reshape(-1, 1)
        prof["layout"] = "vector"
    elif x.ndim == 2:
        prof["layout"] = "tabular"
    else:
        prof["layout"] = "image" if x.ndim == 4 else "sequence" if x.ndim == 3 else f"{x.ndim}d"
    n_rows = int(x.shape[0])
    prof["rows"] = n_rows
    if max_rows is not None and n_rows > int(max_rows):
        x = x[: int(max_rows)]
    n_prof = int(x.shape[0])
    prof["rows_profiled"] = n_prof
    n_cols = int(x.shape[-1]) if x.ndim >= 2 else 1
    per_row = int(np.prod(x.shape[1:-1])) if x.ndim > 2 else 1
    prof["n_columns"] = n_cols
    if names is None or len(names) != n_cols:
        names = None
    if x.size == 0:
        prof["seconds"] = round(time.perf_counter() - t0, 4)
        return prof
    x2 = x.reshape(-1, n_cols)  # a view for C-contiguous input; rows = sample * per_row

    # ---- one full pass: column sums find the columns holding NaN/Inf (a non-finite sum) ------
    # tall, narrow arrays (images: N*H*W rows x 3 channels) reduce 20x faster column by column
    narrow = n_cols <= 16
    with np.errstate(invalid="ignore", over="ignore"):
        if narrow:
            colsum = np.array([np.add.reduce(x2[:, j], dtype=np.float64) for j in range(n_cols)])
        else:
            colsum = np.add.reduce(x2, axis=0, dtype=np.float64)
    bad_cols = np.flatnonzero(~np.isfinite(colsum))
    nan_c = np.zeros(n_cols, np.int64)
    pinf_c = np.zeros(n_cols, np.int64)
    ninf_c = np.zeros(n_cols, np.int64)
    nonfinite_rows_mask = None
    col_rows = {}
    if bad_cols.size:
        sub = x2[:, bad_cols]
        nanm, pinfm, ninfm = np.isnan(sub), np.isposinf(sub), np.isneginf(sub)
        nan_c[bad_cols], pinf_c[bad_cols], ninf_c[bad_cols] = nanm.sum(0), pinfm.sum(0), ninfm.sum(0)
        anybad = (nanm | pinfm | ninfm).any(axis=1)
        nonfinite_rows_mask = anybad
        for k, j in enumerate(bad_cols):
            col_rows[int(j)] = {
                "nan_rows": _rows_where(nanm[:, k], FIRST_ROWS, per_row) if nan_c[j] else [],
                "pos_inf_rows": _rows_where(pinfm[:, k], FIRST_ROWS, per_row) if pinf_c[j] else [],
                "neg_inf_rows": _rows_where(ninfm[:, k], FIRST_ROWS, per_row) if ninf_c[j] else [],
            }
        del sub, nanm, pinfm, ninfm
    finite_count = np.full(n_cols, x2.shape[0], np.int64) - nan_c - pinf_c - ninf_c

    if narrow:
        mins = np.array([x2[:, j].min() for j in range(n_cols)], dtype=np.float64)
        maxs = np.array([x2[:, j].max() for j in range(n_cols)], dtype=np.float64)
    else:
        mins = x2.min(axis=0).astype(np.float64)
        maxs = x2.max(axis=0).astype(np.float64)
    sums = colsum.copy()
    for j in bad_cols:  # recompute over finite values only
        col = x2[:, j]
        fin = col[np.isfinite(col)]
        if fin.size:
            mins[j], maxs[j], sums[j] = fin.min(), fin.max(), fin.sum(dtype=np.float64)
        else:
            mins[j] = maxs[j] = np.nan
            sums[j] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(finite_count > 0, sums / np.maximum(finite_count, 1), np.nan)

    # ---- a deterministic strided sample of rows for median / MAD / std / percentiles --------
    n2 = x2.shape[0]
    stride = max(1, -(-n2 // SAMPLE_ROWS))
    # columns as rows (C-contiguous): numpy partitions a contiguous last axis 2-3x faster
    sampT = np.array(x2[::stride].T, dtype=np.float64, order="C")  # a copy: never write into user data
    nan_cols_in_sample = np.flatnonzero(~np.isfinite(sampT).all(axis=1)) if bad_cols.size else np.array([], int)
    if nan_cols_in_sample.size:
        sampT[~np.isfinite(sampT)] = np.nan
    # vectorised over all columns (a column holding NaN gets NaN here and is redone below)
    import warnings
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.median(sampT, axis=1)
        devT = np.abs(sampT - med[:, None])
        mad = np.median(devT, axis=1)
        std = sampT.std(axis=1)
        typ = np.percentile(np.abs(sampT), 90, axis=1)
    for j in nan_cols_in_sample:  # few columns: one at a time, over their finite values
        col = sampT[j]
        fin = col[np.isfinite(col)]
        devT[j] = np.abs(col - (np.median(fin) if fin.size else 0.0))
        if fin.size:
            med[j] = np.median(fin)
            mad[j] = np.median(np.abs(fin - med[j]))
            std[j] = fin.std()
            typ[j] = np.percentile(np.abs(fin), 90)
    std_exact = stride == 1

    constant = (finite_count > 0) & (mins == maxs)
    # binary (two-valued, label-like) columns: one-hot, flags, 0/255 masks. No outliers there.
    # Two values count as binary only when each appears at least twice and both are modest
    # (|v| <= 1e3): a column of zeros with a single 1e10 is an outlier, not a flag.
    at_min, at_max = (sampT == mins[:, None]).sum(axis=1), (sampT == maxs[:, None]).sum(axis=1)
    n_samp_finite = np.isfinite(sampT).sum(axis=1)
    binary = ((~constant) & (at_min + at_max == n_samp_finite) & (at_min >= 2) & (at_max >= 2)
              & (np.maximum(np.abs(mins), np.abs(maxs)) <= 1e3))

    # spread for the robust z; sparse columns (MAD == 0) use the deviations that are not zero
    spread = 1.4826 * mad
    for j in np.flatnonzero((spread == 0) & ~constant & ~binary & (finite_count > 0)):
        d = devT[j]
        d = d[np.isfinite(d) & (d > 0)]
        if d.size >= 3:
            spread[j] = 1.4826 * float(np.median(d))
        else:
            spread[j] = max(abs(float(med[j])), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        zmax = np.where(spread > 0, np.maximum(np.abs(maxs - med), np.abs(mins - med)) / spread, 0.0)
    zmax = np.where(constant | binary | ~np.isfinite(zmax), 0.0, zmax)

    # typical magnitude: the 90th percentile of |x|; for sparse columns (that is 0) the median of
    # the non-zero |x| (a one-hot column is ~1, a column of rare small counts with one 1e9 is ~1)
    for j in np.flatnonzero(~(typ > 0) & (finite_count > 0)):
        nz = np.abs(sampT[j])
        nz = nz[np.isfinite(nz) & (nz > 0)]
        if nz.size == 0:
            col = x2[:, j]
            nz = np.abs(col[np.isfinite(col) & (col != 0)])
        typ[j] = float(np.median(nz)) if nz.size else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(typ > 0, np.log10(typ), np.nan)

    # ---- per column findings that need another (single-column) pass --------------------------
    sentinels = {}
    for j in range(n_cols):
        if constant[j] or finite_count[j] == 0:
            continue
        for v in {float(mins[j]), float(maxs[j])}:
            if v not in SENTINELS or (prof["integer_dtype"] and v > 0):
                continue  # integer arrays (ids, codes, pixels): only negative markers are suspicious
            col = x2[:, j]
            is_v = col == v
            cnt = int(is_v.sum())
            if cnt < 2:
                continue
            rest = col[~is_v & np.isfinite(col)]
            if rest.size == 0:
                continue
            lo, hi = float(rest.min()), float(rest.max())
            gap = (lo - v) if v < lo else (v - hi)
            apart = gap >= 0.5 * max(hi - lo, 1e-12) or (v < 0 <= lo)
            if apart:
                sentinels.setdefault(int(j), []).append(
                    {"value": v, "count": cnt, "rows": _rows_where(is_v, FIRST_ROWS, per_row),
                     "others_min": lo, "others_max": hi})

    outliers, n_outliers = {}, {}
    for j in np.flatnonzero(zmax >= OUTLIER_Z_INFO):
        col = x2[:, j].astype(np.float64)
        with np.errstate(invalid="ignore"):
            z = np.abs(col - med[j]) / spread[j]
        z[~np.isfinite(col)] = 0.0
        for sv in sentinels.get(int(j), []):  # placeholders are reported as such, not as outliers
            z[col == sv["value"]] = 0.0
        hits = np.flatnonzero(z >= OUTLIER_Z_INFO)
        n_outliers[int(j)] = int(hits.size)
        top = hits[np.argsort(-z[hits], kind="stable")[:FIRST_ROWS]]
        outliers[int(j)] = [{"row": int(i // per_row), "value": _f(col[i]), "z": _f(z[i])} for i in top]

    # ---- assemble ----------------------------------------------------------------------------
    cols = []
    notable = set(map(int, bad_cols)) | set(outliers) | set(sentinels) | set(map(int, np.flatnonzero(constant)))
    listed = range(n_cols) if n_cols <= MAX_COLUMNS_LISTED else sorted(notable)
    if n_cols > MAX_COLUMNS_LISTED:
        prof["columns_listed"] = "notable"
    for j in listed:
        r = col_rows.get(j, {})
        cols.append({
            "index": int(j),
            "name": names[j] if names else None,
            "kind": {"image": "channel", "sequence": "feature"}.get(prof["layout"], "column"),
            "nan": int(nan_c[j]), "nan_rows": r.get("nan_rows", []),
            "pos_inf": int(pinf_c[j]), "pos_inf_rows": r.get("pos_inf_rows", []),
            "neg_inf": int(ninf_c[j]), "neg_inf_rows": r.get("neg_inf_rows", []),
            "finite": int(finite_count[j]),
            "min": _f(mins[j]), "max": _f(maxs[j]), "mean": _f(means[j]),
            "std": _f(std[j]), "median": _f(med[j]), "mad": _f(mad[j]),
            "constant": bool(constant[j]), "binary": bool(binary[j]),
            "scale": _f(scale[j]), "typical": _f(typ[j]),
            "max_z": _f(zmax[j]),
            "outliers": outliers.get(j, []), "n_outliers": n_outliers.get(j, 0),
            "sentinels": sentinels.get(j, []),
        })
    prof["columns"] = cols
    prof["std_exact"] = bool(std_exact)
    prof["nan"] = int(nan_c.sum())
    prof["pos_inf"] = int(pinf_c.sum())
    prof["neg_inf"] = int(ninf_c.sum())
    if nonfinite_rows_mask is not None:
        rows_bad = np.unique(np.flatnonzero(nonfinite_rows_mask) // per_row)
        prof["rows_with_nonfinite"] = int(rows_bad.size)
        prof["nonfinite_rows"] = [int(i) for i in rows_bad[:FIRST_ROWS]]
    prof["constant_columns"] = [int(j) for j in np.flatnonzero(constant)]
    usable = np.isfinite(scale) & ~constant & ~binary
    if usable.any():
        prof["scale_max"] = _f(np.max(scale[usable]))
        prof["scale_min"] = _f(np.min(scale[usable]))
    if labels is not None:
        wanted = set(prof["nonfinite_rows"])
        for c in cols:
            for key in ("nan_rows", "pos_inf_rows", "neg_inf_rows"):
                wanted.update(c[key])
            wanted.update(o["row"] for o in c["outliers"])
            for s in c["sentinels"]:
                wanted.update(s["rows"])
        prof["row_labels"] = {str(i): str(labels[i]) for i in sorted(wanted) if i < len(labels)}
    prof["seconds"] = round(time.perf_counter() - t0, 4)
    return prof


def profile_inputs(name: str, data, role: str, max_rows=None, *, batch=None) -> list:
    """Profiles for a structure of arrays (dict / list / tuple of inputs, as Keras accepts)."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in profile_inputs(f"{name}[{k!r}]", v, role, max_rows, batch=batch)]
    if isinstance(data, (list, tuple)) and data and all(hasattr(v, "shape") for v in data) \
            and len({tuple(getattr(v, "shape", ())) for v in data}) > 1:
        return [p for i, v in enumerate(data) for p in profile_inputs(f"{name}[{i}]", v, role, max_rows, batch=batch)]
    return [profile_array(name, data, role, max_rows, batch=batch)]


# --------------------------------------------------------------------------------------------
# warnings from one profile
# --------------------------------------------------------------------------------------------
def column_label(col: dict) -> str:
    """'column 2 (x2)' or 'column 2'; 'channel 0' for images, 'feature 1' for sequences (last axis)."""
    kind = col.get("kind") or "column"
    if col.get("name") not in (None, ""):
        return f"{kind} {col['index']} ({col['name']})"
    return f"{kind} {col['index']}"


def _col_of(col: dict, prof: dict) -> str:
    """'column 2 (x2) of X', or just 'y' for a one-column array."""
    if prof.get("n_columns", 1) <= 1:
        return where_text(prof)
    return f"{column_label(col)} of {where_text(prof)}"


def where_text(prof: dict) -> str:
    """'X', 'y', 'batch 3 of x' for evidence text."""
    name = prof.get("name") or "the data"
    if prof.get("batch") is not None:
        return f"batch {prof['batch']} of {name}"
    return name


def _rows_text(rows: list, total: int, prof: dict) -> str:
    labels = prof.get("row_labels") or {}
    shown = []
    for r in rows:
        lab = labels.get(str(r))
        shown.append(f"{r} (index {lab})" if lab is not None and lab != str(r) else str(r))
    more = "" if total <= len(rows) else f" (first {len(rows)} of {total})"
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {', '.join(shown)}{more}"


def _is_target(prof: dict) -> bool:
    return prof.get("role") in TARGET_ROLES


def _nonfinite_items(prof: dict) -> list:
    out = []
    target = _is_target(prof)
    where = where_text(prof)
    name = prof.get("name") or "X"
    for kind, key, rows_key in (("nan", "nan", "nan_rows"), ("inf", "pos_inf", "pos_inf_rows"),
                                ("inf", "neg_inf", "neg_inf_rows")):
        cols = [c for c in prof.get("columns", []) if c.get(key)]
        if not cols:
            continue
        word = {"nan": "NaN", "pos_inf": "+Inf", "neg_inf": "-Inf"}[key]
        parts = []
        for c in cols[:4]:
            n = c[key]
            lab = f"{column_label(c)} of {where}" if prof.get("n_columns", 1) > 1 else where
            parts.append(f"{lab} has {n} {word}{'s' if n > 1 and word == 'NaN' else ''}, at "
                         f"{_rows_text(c[rows_key], n, prof)}")
        more = f"; {len(cols) - 4} more columns" if len(cols) > 4 else ""
        total_rows = prof.get("rows_with_nonfinite") or 0
        if total_rows > 1 and len(cols) > 1:
            more += f" ({total_rows} rows hold a NaN or Inf)"
        whole = [c for c in cols if c.get(key) and c.get("finite") == 0]
        hint = ""
        if whole and key == "nan":
            hint = (f" {column_label(whole[0])} is NaN in every row: typical of 0/0 from standardising a "
                    f"constant column ((x - mean) / std with std 0).")
        evidence = "; ".join(parts) + more + "." + hint
        cause = f"{kind}_in_{'target' if target else 'input'}"
        out.append({"cause": cause, "level": "warning", "evidence": evidence,
                    "fix": _nonfinite_fix(kind, target, name, prof, whole)})
    # merge the two inf kinds into one item per cause
    merged = {}
    for item in out:
        if item["cause"] in merged:
            merged[item["cause"]]["evidence"] += " " + item["evidence"].split(": ", 1)[-1]
        else:
            merged[item["cause"]] = item
    return list(merged.values())


def _nonfinite_fix(kind: str, target: bool, name: str, prof: dict, whole_nan_cols: list) -> str:
    frame = prof.get("kind") in ("dataframe", "series")
    if whole_nan_cols:
        return (f"Guard the standardisation against zero std: `{name} = (raw - raw.mean(0)) / "
                f"np.where(raw.std(0) == 0, 1, raw.std(0))`, or use `sklearn.preprocessing.StandardScaler` "
                f"/ `keras.layers.Normalization` (both handle constant columns).")
    if target:
        if kind == "nan":
            if frame:
                return (f"Drop the rows whose target is missing (do not impute targets): "
                        f"`keep = {name}.notna()` then `X, {name} = X[keep], {name}[keep]`.")
            return (f"Drop the rows whose target is missing: `keep = np.isfinite({name}).reshape(len({name}), -1).all(1)` "
                    f"then `X, {name} = X[keep], {name}[keep]`.")
        return (f"Remove or fix the infinite targets: `keep = np.isfinite({name}).reshape(len({name}), -1).all(1)`; "
                f"`X, {name} = X[keep], {name}[keep]`. If they come from `np.log` of zeros, use `np.log1p`.")
    if kind == "nan":
        if frame:
            return (f"Impute the missing values before fit/predict: `from sklearn.impute import SimpleImputer`; "
                    f"`imputer = SimpleImputer(strategy='median').fit(X_train)`; `{name} = imputer.transform({name})` "
                    f"(or `{name} = {name}.fillna({name}.median())`), or drop the rows: `{name} = {name}.dropna()`.")
        return (f"Impute the missing values: `from sklearn.impute import SimpleImputer`; "
                f"`{name} = SimpleImputer(strategy='median').fit_transform({name})` (at predict time, reuse the "
                f"imputer fitted on the training data: `imputer.transform(...)`), or drop the rows: "
                f"`keep = ~np.isnan({name}).reshape(len({name}), -1).any(1)`.")
    return (f"Replace the infinities where they are made (a division by zero?): "
            f"`np.divide(a, b, out=np.zeros_like(a), where=b != 0)`, or turn them into missing values and "
            f"impute: `{name} = np.where(np.isfinite({name}), {name}, np.nan)` then "
            f"`SimpleImputer(strategy='median').fit_transform({name})`.")


def profile_warnings(profile: dict) -> list:
    """Warnings (and info notes) from one profile: [{cause, evidence, fix, level}]."""
    if not profile or profile.get("error"):
        return []
    out = _nonfinite_items(profile)
    target = _is_target(profile)
    where = where_text(profile)
    name = profile.get("name") or ("y" if target else "X")
    cols = profile.get("columns", [])

    # outliers (not for integer arrays: token ids, category codes and uint8 pixels have long tails
    # by nature; DataFrame integer columns are converted to float and are checked)
    sentinel_values = {(c["index"], s["value"]) for c in cols for s in c.get("sentinels", [])}
    def outl(c):
        return [o for o in c.get("outliers", []) if (c["index"], o["value"]) not in sentinel_values]
    checked = [] if profile.get("integer_dtype") else cols
    strong = [c for c in checked if outl(c) and (outl(c)[0]["z"] or 0) >= OUTLIER_Z]
    mild = [c for c in checked if outl(c) and OUTLIER_Z_INFO <= (outl(c)[0]["z"] or 0) < OUTLIER_Z]
    if strong:
        parts = []
        for c in strong[:3]:
            o = outl(c)[0]
            parts.append(f"{_col_of(c, profile)} has {_fmt(o['value'])} at {_rows_text([o['row']], 1, profile)}, "
                         f"{_fmt(o['z'])} robust SDs from its median {_fmt(c['median'])}"
                         + (f" ({c['n_outliers']} values this far out)" if c.get("n_outliers", 0) > 1 else ""))
        col0 = strong[0]
        out.append({
            "cause": "outlier_target" if target else "outlier_input", "level": "warning",
            "evidence": "; ".join(parts) + ".",
            "fix": (f"Remove or clip the extreme rows before training: "
                    f"`z = np.abs({name} - np.median({name}, 0)) / (1.4826 * np.median(np.abs({name} - np.median({name}, 0)), 0) + 1e-12)`; "
                    f"`keep = (z < 1000).reshape(len({name}), -1).all(1)`; `X, y = X[keep], y[keep]` "
                    f"(or clip: `{name}[:, {col0['index']}] = np.clip({name}[:, {col0['index']}], "
                    f"*np.percentile({name}[:, {col0['index']}], [0.1, 99.9]))`), then scale with "
                    f"`sklearn.preprocessing.RobustScaler`."),
        })
    elif mild:
        c = mild[0]
        o = outl(c)[0]
        out.append({"cause": "outlier_target" if target else "outlier_input", "level": "info",
                    "evidence": f"{_col_of(c, profile)} is heavy-tailed: {_fmt(o['value'])} at row {o['row']} is "
                                f"{_fmt(o['z'])} robust SDs from its median {_fmt(c['median'])}.",
                    "fix": f"Consider `np.log1p` or `sklearn.preprocessing.RobustScaler` for {column_label(c)}."})

    # placeholders
    sent = [(c, s) for c in cols for s in c.get("sentinels", [])]
    if sent:
        parts = [f"{_col_of(c, profile)} holds {_fmt(s['value'])} {s['count']} times (rows {', '.join(map(str, s['rows']))}"
                 f"{', ...' if s['count'] > len(s['rows']) else ''}) while its other values lie in "
                 f"{_fmt(s['others_min'])}..{_fmt(s['others_max'])}" for c, s in sent[:3]]
        c0, s0 = sent[0]
        col_ref = f"'{c0['name']}'" if c0.get("name") and profile.get("kind") in ("dataframe", "series") else None
        if col_ref:
            fix = (f"Mark the placeholder as missing, then impute: `{name} = {name}.replace({_fmt(s0['value'])}, np.nan)`; "
                   f"`{name} = SimpleImputer(strategy='median').fit_transform({name})` (add a missing-indicator "
                   f"column if missingness matters: `SimpleImputer(add_indicator=True)`).")
        else:
            fix = (f"Mark the placeholder as missing, then impute: `{name} = np.where({name} == {_fmt(s0['value'])}, "
                   f"np.nan, {name})`; `{name} = SimpleImputer(strategy='median', add_indicator=True).fit_transform({name})`.")
        out.append({"cause": "placeholder_values", "level": "warning",
                    "evidence": "; ".join(parts) + ": a missing-value code, not a measurement.",
                    "fix": fix})

    # scale (features only; integer arrays -- token ids, codes, uint8 pixels -- at most get the note)
    if not target:
        usable = [c for c in cols if c.get("scale") is not None and not c.get("constant") and not c.get("binary")]
        if usable:
            big = max(usable, key=lambda c: c["scale"])
            small = min(usable, key=lambda c: c["scale"])
            spread = big["scale"] - small["scale"]
            if not profile.get("integer_dtype") and (
                    big["scale"] >= UNSCALED_ABS or (big["scale"] >= UNSCALED_REL_MIN and spread >= UNSCALED_SPREAD)):
                ev = (f"{_col_of(big, profile)} is typically ~{_fmt(big['typical'])} "
                      f"(range {_fmt(big['min'])}..{_fmt(big['max'])})")
                if spread >= 1 and small is not big:
                    ev += f", {10 ** spread:.0f}x the typical size of {column_label(small)} (~{_fmt(small['typical'])})"
                ev += ": unscaled inputs make large activations and gradients."
                out.append({"cause": "unscaled_input", "level": "warning", "evidence": ev,
                            "fix": (f"Standardise the features with statistics from the training data: "
                                    f"`norm = keras.layers.Normalization(); norm.adapt({name})` as the model's first "
                                    f"layer, or `scaler = sklearn.preprocessing.StandardScaler().fit({name})`; "
                                    f"`{name} = scaler.transform({name})` (and `scaler.transform` at predict time).")})
            elif big["scale"] >= IMAGE_INFO_SCALE and (big.get("max") or 0) <= 255 * 1.01:
                out.append({"cause": "unscaled_input", "level": "info",
                            "evidence": f"{where} has values up to {_fmt(big['max'])} (typical ~{_fmt(big['typical'])}).",
                            "fix": "Fine for most models; for images, `keras.layers.Rescaling(1.0 / 255)` as the first layer "
                                   "usually trains faster."})

    # constant columns: info only (see the module docstring)
    const = [c for c in cols if c.get("constant")]
    if const and profile.get("rows_profiled", 0) > 1:
        labs = ", ".join(f"{_col_of(c, profile)} = {_fmt(c['min'])}" for c in const[:4])
        more = f" and {len(const) - 4} more" if len(const) > 4 else ""
        out.append({"cause": "zero_variance_normalization", "level": "info",
                    "evidence": f"constant {labs}{more} (std 0 over {profile.get('rows_profiled')} rows).",
                    "fix": "Harmless unless something divides by its std; standardise with "
                           "`keras.layers.Normalization` or `StandardScaler` (both guard std 0), or drop the column."})
    return out
