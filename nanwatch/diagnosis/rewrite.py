"""Rewrite one line of the user's cell into the fixed line (only when it is safe).

Each function takes the source line (as `first_nonfinite.source.code` gives it) and returns the
rewritten line, or None when the line does not parse on its own or has no matching pattern
(the caller then gives the fix as a pattern). Rewrites splice text at the parsed node spans, so the
rest of the line keeps the user's own formatting.
"""

from __future__ import annotations

import ast

LOG_NAMES = {"log"}
SQRT_NAMES = {"sqrt"}
RSQRT_NAMES = {"rsqrt"}
EXP_NAMES = {"exp"}
REDUCE_SUM_NAMES = {"reduce_sum", "sum"}


def _parse(line: str):
    """(indent, body text, tree) of a single line, or None."""
    if not line or "\n" in line.strip():
        return None
    body = line.strip()
    indent = line[: len(line) - len(line.lstrip())]
    src = body[:-1] if body.endswith(":") else body  # "if tf.math.log(x) > 0:" -> an expression
    for candidate in (src, f"({src})"):
        try:
            return indent, candidate, ast.parse(candidate)
        except SyntaxError:
            continue
    return None


def _func_name(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return None


def _root(call: ast.Call) -> str | None:
    f = call.func
    while isinstance(f, ast.Attribute):
        f = f.value
    return f.id if isinstance(f, ast.Name) else None


def _lib(root: str | None) -> str:
    """The wrapper namespace matching the user's call: tf, keras.ops, np."""
    if root in ("np", "numpy"):
        return "np"
    if root in ("keras", "ops"):
        return "keras.ops"
    return "tf"


def _splice(src: str, edits: list) -> str:
    """Apply (start, end, text) edits on a one-line source (right to left). Offsets are the
    UTF-8 byte offsets ast reports."""
    b = src.encode("utf-8")
    for start, end, text in sorted(edits, key=lambda e: -e[0]):
        b = b[:start] + text.encode("utf-8") + b[end:]
    return b.decode("utf-8")


def _outermost(edits: list) -> list:
    """Nested matches (log(log(x))): the outermost edit only, as inner ones would overlap it."""
    kept, last_end = [], -1
    for e in sorted(edits, key=lambda e: (e[0], -e[1])):
        if e[0] >= last_end:
            kept.append(e)
            last_end = e[1]
    return kept


def _span(node) -> tuple:
    return node.col_offset, node.end_col_offset


def _finish(indent: str, original_body: str, parsed_src: str, new_src: str) -> str:
    if parsed_src.startswith("(") and not original_body.startswith("("):
        new_src = new_src[1:-1]
    if original_body.endswith(":"):
        new_src += ":"
    return indent + new_src


class _Unrewritable(Exception):
    """An edit met a call it must change but cannot read: the whole line is left alone."""


def _edit_calls(line: str, edit) -> str | None:
    """The line with every call node rewritten by edit(node, src) -> (start, end, new text), or None to keep
    that call; None when no call changed or an edit raised _Unrewritable."""
    p = _parse(line)
    if p is None:
        return None
    indent, src, tree = p
    try:
        edits = [e for node in ast.walk(tree) if isinstance(node, ast.Call) for e in [edit(node, src)] if e is not None]
    except _Unrewritable:
        return None
    if not edits:
        return None
    return _finish(indent, line.strip(), src, _splice(src, _outermost(edits)))


def wrap_calls(line: str, names: set, wrapper) -> str | None:
    """Wrap the first argument of every call to one of `names`: wrapper(arg_src, lib) -> new text."""
    def edit(node, src):
        if _func_name(node) not in names or not node.args:
            return None
        seg = ast.get_source_segment(src, node.args[0])
        if seg is None:
            raise _Unrewritable
        return (*_span(node.args[0]), wrapper(seg, _lib(_root(node))))
    return _edit_calls(line, edit)


def clip_log(line: str, probability: bool = True) -> str | None:
    """tf.math.log(p) -> tf.math.log(tf.clip_by_value(p, 1e-7, 1.0)) for a value known to be a probability;
    otherwise only the lower side, tf.maximum(x, 1e-7), which keeps every valid value as it was (a clip
    to 1.0 would change a ReLU output of 1.109 into 1). `log(1 + x)` becomes `log1p(max(x, -1 + 1e-7))`."""
    fixed = log1p_line(line)
    if fixed is not None:
        return fixed

    def wrap(arg, lib):
        if probability:
            clip = {"tf": "tf.clip_by_value", "keras.ops": "keras.ops.clip", "np": "np.clip"}[lib]
            return f"{clip}({arg}, 1e-7, 1.0)"
        return f"{lib}.maximum({arg}, 1e-7)"
    return wrap_calls(line, LOG_NAMES if probability else (LOG_NAMES | {"log1p"}), wrap)


def _one_plus(node):
    """x of `1 + x` / `x + 1` (1 or 1.0), else None."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)):
        return None
    for one, other in ((node.left, node.right), (node.right, node.left)):
        if isinstance(one, ast.Constant) and one.value in (1, 1.0) and not isinstance(one.value, bool):
            return other
    return None


def log1p_line(line: str) -> str | None:
    """tf.math.log(1 + x) -> tf.math.log1p(tf.maximum(x, -1.0 + 1e-7)): exact for small x, finite at -1."""
    def edit(node, src):
        if _func_name(node) not in LOG_NAMES or len(node.args) != 1:
            return None
        x = _one_plus(node.args[0])
        func = ast.get_source_segment(src, node.func)
        seg = ast.get_source_segment(src, x) if x is not None else None
        if seg is None or func is None or not func.endswith("log"):
            return None
        return (*_span(node), f"{func}1p({_lib(_root(node))}.maximum({seg}, -1.0 + 1e-7))")
    return _edit_calls(line, edit)


def guard_sqrt(line: str) -> str | None:
    """tf.sqrt(v) -> tf.sqrt(tf.maximum(v, 1e-12)); tf.math.rsqrt(v) likewise."""
    return wrap_calls(line, SQRT_NAMES | RSQRT_NAMES, lambda arg, lib: f"{lib}.maximum({arg}, 1e-12)")


def safe_divide(line: str, denominator_hint: str | None = None) -> str | None:
    """a / b -> tf.math.divide_no_nan(a, b). With several divisions, the one whose denominator
    text contains `denominator_hint`, else the outermost."""
    p = _parse(line)
    if p is None:
        return None
    indent, src, tree = p
    divs = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div)]
    if not divs:
        return None
    pick = divs[0]
    if denominator_hint:
        for d in divs:
            seg = ast.get_source_segment(src, d.right) or ""
            if denominator_hint in seg:
                pick = d
                break
    num = ast.get_source_segment(src, pick.left)
    den = ast.get_source_segment(src, pick.right)
    if num is None or den is None:
        return None
    lib = "tf"
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and _root(n) in ("keras", "ops"):
            lib = "keras.ops"
            break
        if isinstance(n, ast.Call) and _root(n) in ("np", "numpy"):
            lib = "np"
    if lib == "np":
        text = f"np.divide({num}, {den}, out=np.zeros_like({num}), where={den} != 0)"
    elif lib == "keras.ops":
        text = f"keras.ops.divide_no_nan({num}, {den})"
    else:
        text = f"tf.math.divide_no_nan({num}, {den})"
    return _finish(indent, line.strip(), src, _splice(src, [(*_span(pick), text)]))


def stable_exp(line: str) -> str | None:
    """exp(z) / reduce_sum(exp(z), axis=..) -> tf.nn.softmax(z, axis=..);
    log(reduce_sum(exp(z))) -> tf.reduce_logsumexp(z); other exp(z) -> exp(minimum(z, 80.0))."""
    p = _parse(line)
    if p is None:
        return None
    indent, src, tree = p
    for n in ast.walk(tree):
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and isinstance(n.left, ast.Call) \
                and _func_name(n.left) in EXP_NAMES and isinstance(n.right, ast.Call) \
                and _func_name(n.right) in REDUCE_SUM_NAMES and n.right.args \
                and isinstance(n.right.args[0], ast.Call) and _func_name(n.right.args[0]) in EXP_NAMES \
                and n.left.args and n.right.args[0].args:
            z = ast.get_source_segment(src, n.left.args[0])
            z2 = ast.get_source_segment(src, n.right.args[0].args[0])
            if z is None or z != z2:
                continue
            axis = next((ast.get_source_segment(src, k.value) for k in n.right.keywords if k.arg == "axis"), "-1")
            lib = _lib(_root(n.left))
            fn = {"tf": "tf.nn.softmax", "keras.ops": "keras.ops.softmax", "np": "scipy.special.softmax"}[lib]
            return _finish(indent, line.strip(), src, _splice(src, [(*_span(n), f"{fn}({z}, axis={axis})")]))
        if isinstance(n, ast.Call) and _func_name(n) in LOG_NAMES and n.args and isinstance(n.args[0], ast.Call) \
                and _func_name(n.args[0]) in REDUCE_SUM_NAMES and n.args[0].args \
                and isinstance(n.args[0].args[0], ast.Call) and _func_name(n.args[0].args[0]) in EXP_NAMES \
                and n.args[0].args[0].args:
            z = ast.get_source_segment(src, n.args[0].args[0].args[0])
            rest = [ast.get_source_segment(src, k) for k in n.args[0].keywords]
            lib = _lib(_root(n))
            fn = {"tf": "tf.reduce_logsumexp", "keras.ops": "keras.ops.logsumexp", "np": "scipy.special.logsumexp"}[lib]
            args = ", ".join([z] + [r for r in rest if r])
            return _finish(indent, line.strip(), src, _splice(src, [(*_span(n), f"{fn}({args})")]))
    return wrap_calls(line, EXP_NAMES, lambda arg, lib: f"{lib}.minimum({arg}, 80.0)")


# --- the gradient traps (pattern_rules) -----------------------------------------------------------
WHERE_NAMES = {"where"}
# forward op type -> (the call names that make it, the safe value for its masked input)
FORWARD_CALLS = {
    "Log": ({"log"}, "1.0"), "Log1p": ({"log1p"}, "0.0"), "Sqrt": ({"sqrt"}, "1.0"), "Rsqrt": ({"rsqrt"}, "1.0"),
    "Reciprocal": ({"reciprocal"}, "1.0"), "Inv": ({"reciprocal"}, "1.0"), "Pow": ({"pow"}, "1.0"),
    "RealDiv": ({"divide", "truediv", "div", "realdiv"}, "1.0"), "Div": ({"divide", "truediv", "div"}, "1.0"),
    "Xlogy": ({"xlogy"}, "1.0"), "Xdivy": ({"xdivy"}, "1.0"), "Acos": ({"acos", "arccos"}, "0.0"),
    "Asin": ({"asin", "arcsin"}, "0.0"), "Atanh": ({"atanh", "arctanh"}, "0.0"), "Acosh": ({"acosh", "arccosh"}, "2.0"),
    "Lgamma": ({"lgamma"}, "1.0"), "Digamma": ({"digamma"}, "1.0"), "EuclideanNorm": ({"reduce_euclidean_norm"}, "1.0"),
}
# calls whose only effects are values (a where's condition is repeated in the rewrite)
PURE_ROOTS = {"tf", "keras", "ops", "np", "numpy", "math", "jnp"}


def _masked_operand(node, forward_op: str):
    """The operand of `node` that the forward op `forward_op` takes its risky input from, or None."""
    names = FORWARD_CALLS.get(forward_op, (set(), ""))[0]
    if isinstance(node, ast.Call) and _func_name(node) in names and node.args:
        two = forward_op in ("RealDiv", "Div", "Xlogy", "Xdivy")
        return node.args[1] if two and len(node.args) > 1 else (None if two else node.args[0])
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Div) and forward_op in ("RealDiv", "Div", "Reciprocal", "Inv"):
            return node.right
        if isinstance(node.op, ast.Pow) and forward_op == "Pow":
            return node.left
    return None


def _pure(node) -> bool:
    """No call in `node` but to a math library (tf, keras.ops, numpy): repeating it changes nothing."""
    return all(_root(n) in PURE_ROOTS for n in ast.walk(node) if isinstance(n, ast.Call))


def double_where(line: str, forward_op: str) -> str | None:
    """The double where: `tf.where(c, tf.math.log(y), 0.0)` -> `tf.where(c, tf.math.log(tf.where(c, y, 1.0)), 0.0)`.

    Only for a line with one where whose selected branch holds the forward op, with a condition free of
    calls other than math-library ones (it is written twice)."""
    p = _parse(line)
    if p is None or forward_op not in FORWARD_CALLS:
        return None
    indent, src, tree = p
    edits = []
    for where in ast.walk(tree):
        if not (isinstance(where, ast.Call) and _func_name(where) in WHERE_NAMES and len(where.args) == 3):
            continue
        cond, taken, other = where.args
        cond_src, func_src = ast.get_source_segment(src, cond), ast.get_source_segment(src, where.func)
        if cond_src is None or func_src is None or not _pure(cond):
            return None
        for branch, when_true in ((taken, True), (other, False)):
            for node in ast.walk(branch):
                arg = _masked_operand(node, forward_op)
                seg = ast.get_source_segment(src, arg) if arg is not None else None
                if seg is None:
                    continue
                safe = FORWARD_CALLS[forward_op][1]
                picks = f"{seg}, {safe}" if when_true else f"{safe}, {seg}"
                edits.append((*_span(arg), f"{func_src}({cond_src}, {picks})"))
    if len(edits) != 1:
        return None   # none, or several candidates: the template says it better than a guess
    return _finish(indent, line.strip(), src, _splice(src, edits))


NORM_NAMES = {"norm", "reduce_euclidean_norm"}
EUCLIDEAN_ORDS = {"'euclidean'", '"euclidean"', "2", "'fro'", '"fro"', "None"}


def epsilon_norm(line: str) -> str | None:
    """An epsilon under the square root: `tf.norm(d, axis=-1)` -> `tf.sqrt(tf.reduce_sum(tf.square(d), axis=-1)
    + 1e-12)`, `tf.sqrt(v)` -> `tf.sqrt(v + 1e-12)` (every such call of the line)."""
    p = _parse(line)
    if p is None:
        return None
    indent, src, tree = p
    edits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = _func_name(node)
        arg = ast.get_source_segment(src, node.args[0])
        if arg is None:
            continue
        if name in SQRT_NAMES | RSQRT_NAMES and len(node.args) == 1:
            edits.append((*_span(node.args[0]), f"{arg} + 1e-12"))
        elif name in NORM_NAMES:
            keys = {k.arg: ast.get_source_segment(src, k.value) for k in node.keywords}
            if None in keys or len(node.args) > (1 if name == "norm" else 2) or \
                    keys.pop("ord", "None") not in EUCLIDEAN_ORDS or keys.pop("name", None) is not None:
                return None
            if len(node.args) == 2:
                keys.setdefault("axis", ast.get_source_segment(src, node.args[1]))
            lib = _lib(_root(node))
            total = {"tf": "tf.reduce_sum", "keras.ops": "keras.ops.sum", "np": "np.sum"}[lib]
            rest = "".join(f", {k}={v}" for k, v in keys.items())
            edits.append((*_span(node), f"{lib}.sqrt({total}({lib}.square({arg}){rest}) + 1e-12)"))
    if not edits:
        return None
    return _finish(indent, line.strip(), src, _splice(src, _outermost(edits)))


NEG_INF_TEXTS = ('float("-inf")', "float('-inf')", '-float("inf")', "-float('inf')", "-np.inf", "-numpy.inf",
                 "np.NINF", "-math.inf", "-tf.float32.max", "-jnp.inf")


def finite_mask(line: str, value: str = "-1e9") -> str | None:
    """A -inf mask value -> `value`: `tf.where(mask, s, float("-inf"))` -> `tf.where(mask, s, -1e9)`."""
    p = _parse(line)
    if p is None:
        return None
    indent, src, tree = p
    edits = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Call, ast.UnaryOp, ast.Attribute)):
            seg = ast.get_source_segment(src, node)
            if seg is not None and seg.replace(" ", "") in NEG_INF_TEXTS:
                edits.append((*_span(node), value))
    if not edits:
        return None
    return _finish(indent, line.strip(), src, _splice(src, _outermost(edits)))
