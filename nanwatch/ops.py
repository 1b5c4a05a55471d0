"""One op taxonomy, shared by the engine (what to check, what a detection is) and the diagnosis
(what an op's failure means). TensorFlow-free: op types are strings.

Each set answers one question about an op type; a name is used for one meaning only.
"""

from __future__ import annotations

# Ops that hand a batch over from an iterator: a non-finite output there is the data's, not an op's.
ITERATOR_OPS = frozenset({"IteratorGetNext", "IteratorGetNextSync", "OptionalGetValue", "IteratorGetNextAsOptional",
                          "MultiDeviceIteratorGetNextFromShard"})   # a distributed dataset's shard, per device

# Ops whose output is data entering the computation (feeds, arguments, constants, dataset stages,
# the array adapter's gather): when the first non-finite tensor comes from one of them, the data is
# the origin.
DATA_SOURCE_OPS = ITERATOR_OPS | frozenset({
    "Placeholder", "_Arg", "Const", "GatherV2", "TensorSliceDataset", "MapDataset", "BatchDatasetV2",
    "ParallelMapDatasetV2"})

# Ops that read a variable: a non-finite output there is a weight that was already non-finite.
WEIGHT_READS = frozenset({"ReadVariableOp", "ResourceGather", "ResourceGatherNd", "VarHandleOp", "VariableV2",
                          "Variable"})

# Contractions, and the bias/residual adds after them, that grappler fuses with the activation into
# one kernel: the engine leaves them unchecked in graphs so the fused kernel still runs.
CONTRACTIONS = frozenset({"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2D", "Conv3D",
                          "DepthwiseConv2dNative", "Conv"})
BIAS_ADDS = frozenset({"BiasAdd", "BiasAddV1", "AddV2", "Add"})
FUSION_INTERMEDIATES = CONTRACTIONS | BIAS_ADDS

# Ops that can turn non-finite inputs into finite outputs (a -inf mask into softmax, a where that
# picks the other branch, a minimum with a finite bound, exp(-inf) = 0). The engine reports through
# them as usual today; the taxonomy names them for the harm semantics that builds on it.
ABSORBING_OPS = frozenset({"Softmax", "LogSoftmax", "SelectV2", "Select", "Minimum", "Maximum", "Exp",
                           "MaxPool", "MaxPoolV2", "MaxPool3D", "Max", "Min", "ClipByValue", "ArgMax", "ArgMin"})

# Ops by the mathematical failure they can make from finite inputs (the diagnosis rules' vocabulary).
LOG_OPS = frozenset({"Log", "Log1p", "Xlogy", "Xlog1py"})
SQRT_OPS = frozenset({"Sqrt", "Rsqrt"})
SQRT_GRAD_OPS = frozenset({"SqrtGrad", "RsqrtGrad"})
DIV_OPS = frozenset({"RealDiv", "Div", "DivNoNan", "Reciprocal", "Inv", "Xdivy", "FloorDiv", "TruncateDiv",
                     "FloorMod"})
EXP_OPS = frozenset({"Exp", "Expm1"})
OVERFLOW_OPS = frozenset({
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2D", "Conv1D", "Conv3D",
    "DepthwiseConv2dNative", "Square", "Mul", "AddV2", "Add", "Sum", "Mean", "Pow", "BiasAdd",
    "SquaredDifference", "Prod", "Cumsum", "Einsum", "Sub", "AddN", "L2Loss", "Exp", "Cast",
    "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMulGrad", "ResourceApplyAdam",
    "ResourceApplyGradientDescent", "AssignSubVariableOp", "AssignAddVariableOp", "Relu", "Elu",
    "Selu", "LeakyRelu", "Tanh", "Sigmoid", "Softmax", "Max", "Neg", "Abs", "Sqrt"})

# Ops that write a variable: when the variable is the model's state (a weight, an optimizer slot),
# a non-finite value written there reaches the training (a sink of the harm semantics).
VARIABLE_WRITES = frozenset({"AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
                             "ResourceScatterUpdate", "ResourceScatterAdd", "ResourceScatterSub",
                             "ResourceScatterNdUpdate", "ResourceScatterNdAdd", "ResourceScatterNdSub"})

# The same in traced graphs, by prefix (the fused optimizer kernels `ResourceApplyAdam`..., sparse and
# strided-slice updates): what a tf.function writes.
GRAPH_WRITE_PREFIXES = ("AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp", "ResourceApply",
                        "ResourceSparseApply", "ResourceScatter", "ResourceStridedSliceAssign")

# Softmax ops: over a row whose every entry is -inf they make NaN (a fully masked row).
SOFTMAX_OPS = frozenset({"Softmax", "LogSoftmax"})

# Forward ops that are finite at points where their derivative is not (sqrt and norms at 0, pow with an
# exponent below 1 at 0, acos/asin at +-1, log at a denormal, lgamma at a pole).
NONDIFFERENTIABLE_OPS = frozenset({"Sqrt", "Rsqrt", "Pow", "EuclideanNorm", "Abs", "Acos", "Asin", "Atanh",
                                   "Acosh", "Log", "Log1p", "Xlogy", "Lgamma", "Digamma", "Atan2"})

# Ops whose gradient can be non-finite where they are finite (the above, and divisions by a value
# that a where masks): the engine keeps their forward line, so a NaN born in their gradient names it.
GRADIENT_RISK_OPS = NONDIFFERENTIABLE_OPS | frozenset({"RealDiv", "Div", "Reciprocal", "Inv", "Xdivy",
                                                       "Softplus", "Tan"})

# Ops that read only a tensor's shape or size: consuming a non-finite value, they absorb nothing.
SHAPE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank", "BroadcastGradientArgs", "ZerosLike", "OnesLike",
                       "TensorListElementShape"})
