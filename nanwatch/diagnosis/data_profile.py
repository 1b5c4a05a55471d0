"""Data profiles: what is in the arrays a model is fed (x/y of fit/predict, consumed batches),
as JSON-safe numbers a diagnosis can quote. The numbers only; `data_warnings` judges them.

`profile_array(name, data, role)` turns one array-like (numpy array, pandas DataFrame/Series,
list, eager tensor: anything `np.asarray` takes) into a profile: per column the NaN/+Inf/-Inf
counts and first rows, min/max/mean/std over the finite values, zeros, a constant flag, repeated
sentinel values (-999, 9999, ...), extreme values by robust z-score (median/MAD), and the
column's scale (log10 of its typical magnitude).

Layout: axis 0 is the sample ("row"). A 2-D array has one column per feature; an array of
3 or more dims (images N,H,W,C; sequences N,T,F) has one column per entry of its last axis
(channel / feature), its statistics taken over all the other axes; a 1-D array is one column.

How the statistics are taken (and why) -- measured on real data in tests/unit/test_data_checks.py:
- robust z = |x - median| / (1.4826 * MAD); values with z >= OUTLIER_Z_INFO are listed
  (data_warnings decides which of them are outliers).
- MAD == 0 (more than half the values equal the median: sparse / one-hot / padded columns): the
  spread is taken from the values that differ from the median (their median absolute deviation),
  so a rare 1 in a one-hot column or 255 in a mostly-black pixel column is not an outlier,
  while 1e10 in a column of small counts is.
- Placeholders: a value from SENTINELS that appears >= 2 times at the column's min or max and is
  set apart from the other values (a gap >= half their range, or a negative marker in an
  otherwise non-negative column). Uniform integers 0..9999 (9999 is just the max) do not match.
"""

from __future__ import annotations

import math
import time

import numpy as np

OUTLIER_Z_INFO = 30.0       # robust z at/above which a value is listed (data_warnings: a note from here)
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

