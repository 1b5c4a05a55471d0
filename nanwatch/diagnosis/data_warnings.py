"""Warnings from one data profile (`data_profile.profile_array`): schema-1 {cause, evidence, fix},
plus an internal "level": "warning" | "info" (info items are notes for Report.info, not alarms).
The evidence texts name the column, the rows and the values; the fixes are code for that array.

Thresholds (and why) -- measured on real data in tests/unit/test_data_checks.py:
- OUTLIER_Z = 1000: healthy data stays far below: 1e6 Gaussian rows reach a robust z of ~5,
  exponential ~18, lognormal(sigma=1) ~150, one-hot/binary columns are skipped, image pixel
  columns (mostly 0) ~2 with the profile's sparse-column spread. The seed-004 outlier (1e10 among
  rand*10) is z ~ 3e9. Values with 30 <= z < 1000 become an info note (heavy tail), not a warning.
- Unscaled input (features only, float columns, not binary): a column whose typical magnitude
  (90th percentile of |x|) is >= 1e3, or >= 1e2 while another column is >= 10**2.5 times
  smaller. Raw 0..255 images (typical ~230, all channels alike) do not warn: Keras CNNs train on
  them (measured, tests/scenarios/diagnosis.py f08); they get an info note suggesting Rescaling.
  Integer-typed arrays are not judged for scale (token ids for an Embedding are not "unscaled").
  Targets are never "unscaled": a large but finite loss on price-like targets is healthy.
- Constant columns are info, not warnings: one-hot/bias columns and constant batches are common
  and Keras' BatchNormalization/Normalization and sklearn's StandardScaler all guard the zero
  std (measured: zoo p06 stays finite). The diagnosis rules raise zero_variance_normalization
  only when the first non-finite op is a division (or Rsqrt) and a constant column is there.
"""

from __future__ import annotations

from ..numfmt import EVIDENCE, fmt
from .data_profile import OUTLIER_Z_INFO, TARGET_ROLES

OUTLIER_Z = 1000.0          # robust z at/above which a value is an outlier warning
UNSCALED_ABS = 3.0          # log10 typical magnitude at/above which a feature is unscaled
UNSCALED_REL_MIN = 2.0      # ... or at/above this, with another feature this many orders smaller:
UNSCALED_SPREAD = 2.5
IMAGE_INFO_SCALE = 2.0      # typical magnitude >= 100 (and < 1e3): note "consider Rescaling"
RARE_Z = 40.0               # a standardised, almost always constant column with a value this many stds out


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
            parts.append(f"{_col_of(c, profile)} has {fmt(o['value'], EVIDENCE)} at {_rows_text([o['row']], 1, profile)}, "
                         f"{fmt(o['z'], EVIDENCE)} robust SDs from its median {fmt(c['median'], EVIDENCE)}"
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
                    "evidence": f"{_col_of(c, profile)} is heavy-tailed: {fmt(o['value'], EVIDENCE)} at row {o['row']} is "
                                f"{fmt(o['z'], EVIDENCE)} robust SDs from its median {fmt(c['median'], EVIDENCE)}.",
                    "fix": f"Consider `np.log1p` or `sklearn.preprocessing.RobustScaler` for {column_label(c)}."})

    # placeholders
    sent = [(c, s) for c in cols for s in c.get("sentinels", [])]
    if sent:
        parts = [f"{_col_of(c, profile)} holds {fmt(s['value'], EVIDENCE)} {s['count']} times (rows {', '.join(map(str, s['rows']))}"
                 f"{', ...' if s['count'] > len(s['rows']) else ''}) while its other values lie in "
                 f"{fmt(s['others_min'], EVIDENCE)}..{fmt(s['others_max'], EVIDENCE)}" for c, s in sent[:3]]
        c0, s0 = sent[0]
        col_ref = f"'{c0['name']}'" if c0.get("name") and profile.get("kind") in ("dataframe", "series") else None
        if col_ref:
            fix = (f"Mark the placeholder as missing, then impute: `{name} = {name}.replace({fmt(s0['value'], EVIDENCE)}, np.nan)`; "
                   f"`{name} = SimpleImputer(strategy='median').fit_transform({name})` (add a missing-indicator "
                   f"column if missingness matters: `SimpleImputer(add_indicator=True)`).")
        else:
            fix = (f"Mark the placeholder as missing, then impute: `{name} = np.where({name} == {fmt(s0['value'], EVIDENCE)}, "
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
                ev = (f"{_col_of(big, profile)} is typically ~{fmt(big['typical'], EVIDENCE)} "
                      f"(range {fmt(big['min'], EVIDENCE)}..{fmt(big['max'], EVIDENCE)})")
                if spread >= 1 and small is not big:
                    ev += f", {10 ** spread:.0f}x the typical size of {column_label(small)} (~{fmt(small['typical'], EVIDENCE)})"
                ev += ": unscaled inputs make large activations and gradients."
                out.append({"cause": "unscaled_input", "level": "warning", "evidence": ev,
                            "fix": (f"Standardise the features with statistics from the training data: "
                                    f"`norm = keras.layers.Normalization(); norm.adapt({name})` as the model's first "
                                    f"layer, or `scaler = sklearn.preprocessing.StandardScaler().fit({name})`; "
                                    f"`{name} = scaler.transform({name})` (and `scaler.transform` at predict time).")})
            elif big["scale"] >= IMAGE_INFO_SCALE and (big.get("max") or 0) <= 255 * 1.01:
                out.append({"cause": "unscaled_input", "level": "info",
                            "evidence": f"{where} has values up to {fmt(big['max'], EVIDENCE)} (typical ~{fmt(big['typical'], EVIDENCE)}).",
                            "fix": "Fine for most models; for images, `keras.layers.Rescaling(1.0 / 255)` as the first layer "
                                   "usually trains faster."})

    if not target:
        out.extend(_rare_standardized_items(profile))

    # constant columns: info only (see the module docstring)
    const = [c for c in cols if c.get("constant")]
    if const and profile.get("rows_profiled", 0) > 1:
        labs = ", ".join(f"{_col_of(c, profile)} = {fmt(c['min'], EVIDENCE)}" for c in const[:4])
        more = f" and {len(const) - 4} more" if len(const) > 4 else ""
        out.append({"cause": "zero_variance_normalization", "level": "info",
                    "evidence": f"constant {labs}{more} (std 0 over {profile.get('rows_profiled')} rows).",
                    "fix": "Harmless unless something divides by its std; standardise with "
                           "`keras.layers.Normalization` or `StandardScaler` (both guard std 0), or drop the column."})
    return out


def _rare_standardized_items(profile: dict) -> list:
    """rare_values_standardized: columns standardised to mean 0 / std 1 (StandardScaler) that are almost
    always one value (MAD 0), so their rare other value lands >= RARE_Z stds out: a pixel inked in 1 of
    n images becomes ~sqrt(n). Measured (tests/unit/test_loss_data_rules.py): standardised Gaussian columns
    reach 5.4 in 1e6 rows, exponential 12.3, a one-hot category in 0.1% of 1e5 rows 29.6, the VAE scenario's
    border pixels (1 image of 3000) 54.8; lognormal columns reach 45.8 but their MAD is not 0."""
    hits = []
    for c in profile.get("columns", []):
        mean, std, mad = c.get("mean"), c.get("std"), c.get("mad")
        if None in (mean, std, mad) or not (0.8 <= std <= 1.2 and abs(mean) <= 0.2) or mad > 1e-3 * std:
            continue
        far = max(abs(c.get("min") or 0.0), abs(c.get("max") or 0.0))
        if far >= RARE_Z * std:
            hits.append((far, c))
    if not hits:
        return []
    hits.sort(key=lambda h: -h[0])
    far, c0 = hits[0]
    rows = {}
    for _, c in hits:
        for o in c.get("outliers", []):
            rows[o["row"]] = rows.get(o["row"], 0) + 1
    name = profile.get("name") or "X"
    ev = (f"{len(hits)} column{'s' if len(hits) > 1 else ''} of {where_text(profile)} "
          f"({', '.join(column_label(c) for _, c in hits[:3])}{', ...' if len(hits) > 3 else ''}) "
          f"{'are' if len(hits) > 1 else 'is'} standardised (mean 0, std 1) yet almost always one value, so the rare "
          f"other value lies far out: {fmt(c0.get('max') if abs(c0.get('max') or 0) >= abs(c0.get('min') or 0) else c0.get('min'), EVIDENCE)} "
          f"in {column_label(c0)}, {fmt(far / c0['std'], EVIDENCE)} standard deviations (a feature seen in 1 of n rows "
          f"becomes ~sqrt(n) after StandardScaler)")
    if rows:
        row, count = max(rows.items(), key=lambda kv: kv[1])
        ev += f"; {_rows_text([row], 1, profile)} holds {count} of them"
    return [{"cause": "rare_values_standardized", "level": "warning", "evidence": ev + ".",
             "fix": (f"Do not standardise features that are almost always one value: scale them to 0..1 instead "
                     f"(pixels: `{name} = raw / 255.0` or `keras.layers.Rescaling(1.0 / 255)`; otherwise "
                     f"`sklearn.preprocessing.MinMaxScaler`), or drop the columns that are almost never non-zero "
                     f"(`keep = (raw != 0).mean(0) > 0.001`).")}]
