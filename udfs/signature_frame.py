"""A model's signature as a `ScoringSpec`, and a pandas frame checked against it, without Spark.

The REST model server scores with `udfs.scoring.score_batch` (the same binding, casting and
null policy as the SQL functions) but never imports Spark, so it cannot use
`udfs.model_function.signature_inputs` (which names Spark types). This module reads the same
signature into MLflow's own type names and judges a request's columns against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from udfs.errors import ModelUsageError
from udfs.scoring import ScoringSpec
from udfs.signature_types import type_refusal

if TYPE_CHECKING:
    from mlflow.models.signature import ModelSignature


@dataclass(frozen=True)
class SignatureInputs:
    """A signature's named column inputs.

    Attributes:
        spec: what `udfs.scoring.score_batch` needs (names, numpy dtypes, output names).
        types: each input's MLflow type name (`double`, `long`, `string`, `boolean`...).
        required: whether each input must be present (MLflow's `required` flag).
    """

    spec: ScoringSpec
    types: tuple[str, ...]
    required: tuple[bool, ...]


def signature_inputs_of(signature: ModelSignature | None, model_label: str) -> SignatureInputs:
    """Read the named scalar inputs and the output names of a model's signature.

    Raises:
        ModelUsageError: no signature, tensor or unnamed inputs, or non-scalar input types.
    """
    from mlflow.types import DataType as MlflowType

    if signature is None or signature.inputs is None or signature.inputs.is_tensor_spec():
        raise ModelUsageError(
            f"{model_label}: the model has no signature with named column inputs; log it with "
            "signature=infer_signature(features_frame, predictions)"
        )
    names, dtypes, types, required = [], [], [], []
    for position, item in enumerate(signature.inputs.inputs, start=1):
        if item.name is None or not isinstance(item.type, MlflowType):
            raise ModelUsageError(
                f"{model_label}: input {position} ({item.name or 'unnamed'}) is not a named "
                "scalar column; only scalar column inputs are served"
            )
        numpy_dtype = item.type.to_numpy()
        names.append(item.name)
        dtypes.append("object" if numpy_dtype.kind in "USO" else str(numpy_dtype))
        types.append(item.type.name)
        required.append(bool(getattr(item, "required", True)))
    output_names = None
    outputs = signature.outputs
    if outputs is not None and not outputs.is_tensor_spec() and len(outputs.inputs) > 1:
        output_names = tuple(o.name or f"output_{i}" for i, o in enumerate(outputs.inputs))
    spec = ScoringSpec(
        function_name=model_label,
        input_names=tuple(names),
        input_dtypes=tuple(dtypes),
        output_names=output_names,
    )
    return SignatureInputs(spec, tuple(types), tuple(required))


def frame_problems(frame: pd.DataFrame, inputs: SignatureInputs) -> list[str]:
    """Every way `frame` does not fit the signature: missing inputs, then mistyped ones.

    Extra columns are not problems (they are ignored, as a struct's extra fields in SQL).
    Missing optional inputs are added to `frame` as nulls in place.
    """
    spec = inputs.spec
    missing = [
        name
        for name, needed in zip(spec.input_names, inputs.required, strict=True)
        if needed and name not in frame.columns
    ]
    problems = []
    if missing:
        problems.append(
            f"missing feature {', '.join(map(repr, missing))} (the model's inputs: "
            f"{', '.join(spec.input_names)})"
        )
    for name in spec.input_names:
        if name not in frame.columns and name not in missing:
            frame[name] = None
    for name, expected in zip(spec.input_names, inputs.types, strict=True):
        if name in missing:
            continue
        why = type_refusal(frame[name], expected)
        if why is not None:
            problems.append(f"feature {name!r} is {expected} but was given {why}")
    return problems
