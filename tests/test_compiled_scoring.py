"""Compiled scoring: scikit-learn pipelines as native Spark expressions, proven against the model.

Every model here is logged to the test MLflow store and registered through
`register_model_function`; SQL predictions are compared with scikit-learn's own `predict` /
`predict_proba` on data with nulls, NaNs, unseen categories and extreme values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from lakegate_config.settings import Settings
from udfs import ModelFunction, ModelUsageError, register_model_function, run_checked_sql
from udfs.compiled import (
    HUGE_METHOD_LIMIT,
    SPARK_DEFAULT_METHOD_LIMIT,
    float32_threshold,
    translate_model,
    trees,
    verdict_cache,
)

NUMERIC = ["f1", "f2", "f3"]
COLUMNS = [*NUMERIC, "segment"]
SEGMENTS = ["north", "south", "east", "o'hara"]  # a quote in a category: SQL escaping
JIT_METHOD_BYTES = 8000  # HotSpot compiles no method with more bytecode than this
DEFAULT_LIMIT = SPARK_DEFAULT_METHOD_LIMIT


@pytest.fixture(scope="module", autouse=True)
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's own verdict cache: every registration here proves its model afresh."""
    folder = tmp_path_factory.mktemp("verdicts")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(verdict_cache.CACHE_ENV, str(folder))
        yield folder


def largest_generated_method(spark: SparkSession, df: DataFrame) -> int:
    """Bytecode size of the largest method Spark generates for `df`'s whole-stage code."""
    jvm = spark.sparkContext._jvm
    compiler = jvm.org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator
    pending = [df._jdf.queryExecution().executedPlan()]
    sizes = []
    while pending:
        node = pending.pop()
        if node.getClass().getSimpleName() == "WholeStageCodegenExec":
            sizes.append(compiler.compile(node.doCodeGen()._2())._2().maxMethodCodeSize())
        children = node.children().iterator()
        while children.hasNext():
            pending.append(children.next())
    assert sizes, "the plan has no whole-stage code"
    return max(sizes)


def training_frame(rows: int = 600, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "f1": rng.normal(size=rows),
            "f2": rng.normal(5.0, 3.0, size=rows),
            "f3": rng.uniform(-10, 10, size=rows),
            "segment": rng.choice(SEGMENTS, size=rows),
        }
    )
    bump = frame["segment"].map({"north": 1.0, "south": -1.0, "east": 0.5, "o'hara": 0.0})
    signal = 1.5 * frame["f1"] - 0.4 * frame["f2"] + 0.2 * frame["f3"] + bump
    frame["value"] = signal + rng.normal(scale=0.3, size=rows)
    frame["label"] = (signal + rng.normal(scale=0.5, size=rows) > -1.0).astype("int64")
    frame["tier"] = np.select([signal < -2.5, signal < -0.5], ["low", "mid"], "high")
    return frame


def scoring_frame() -> pd.DataFrame:
    """Rows to score: ordinary, extreme, unseen category, nulls and NaNs."""
    ordinary = training_frame(rows=150, seed=99)[COLUMNS]
    odd = pd.DataFrame(
        [
            (1e6, -1e6, 1e9, "north"),
            (-3e7, 2e8, -5e8, "east"),
            (0.0, -0.0, 1e-300, "south"),
            (0.3, 4.0, 2.0, "unseen-region"),
            (None, 4.0, 2.0, "north"),
            (0.3, float("nan"), 2.0, "north"),
            (0.3, 4.0, 2.0, None),
        ],
        columns=COLUMNS,
    )
    frame = pd.concat([ordinary, odd], ignore_index=True)
    frame.insert(0, "id", np.arange(len(frame), dtype="int64"))
    return frame


def expected_frame(
    model: Any, frame: pd.DataFrame, method: str, columns: list[str]
) -> pd.DataFrame:
    """scikit-learn's own predictions, null where an input is null or NaN (the policy)."""
    complete = frame[columns].notna().all(axis=1)
    out = pd.DataFrame({"id": frame["id"]})
    scored = getattr(model, method)(frame.loc[complete, columns])
    mask = complete.to_numpy()

    def column(values: Any) -> pd.Series:
        out_values = np.full(len(frame), None, dtype=object)
        out_values[mask] = [v.item() if isinstance(v, np.generic) else v for v in values]
        return pd.Series(out_values, dtype=object)

    if method == "predict_proba":
        for k, cls in enumerate(model.classes_):
            out[f"p_{cls}"] = column(scored[:, k])
    else:
        out["p"] = column(scored)
    return out


def _trusted(model: Any) -> list[str] | None:
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return sorted(t for t in untrusted if t.startswith(("sklearn.", "numpy."))) or None


def log_and_register(
    settings: Settings, name: str, model: Any, x: pd.DataFrame, method: str = "predict"
) -> str:
    from mlflow.models import infer_signature

    from spark_jobs.services.training import pinned_requirements

    example = x.head(5)
    output = getattr(model, method)(example)
    if method == "predict_proba":
        output = pd.DataFrame(output, columns=[f"p_{c}" for c in model.classes_])
    else:
        output = pd.Series(output, name="prediction")
    signature = infer_signature(example, output)
    mlflow.set_tracking_uri(settings.tracking_uri)
    experiment = mlflow.get_experiment_by_name(settings.mlflow.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else mlflow.create_experiment(settings.mlflow.experiment, settings.artifact_root)
    )
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=example,
            pyfunc_predict_fn=method,
            skops_trusted_types=_trusted(model),
            pip_requirements=pinned_requirements(),
        )
    version = mlflow.register_model(info.model_uri, name)
    return f"models:/{name}/{version.version}"


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return training_frame()


@pytest.fixture(scope="module")
def to_score(spark: SparkSession) -> pd.DataFrame:
    frame = scoring_frame()
    records = [
        tuple(
            None if (isinstance(v, float) and math.isnan(v) and c != "f2") else v
            for c, v in row.items()
        )
        for _, row in frame.astype(object).iterrows()
    ]
    schema = "id long, f1 double, f2 double, f3 double, segment string"
    spark.createDataFrame(records, schema).repartition(3).createOrReplaceTempView("compiled_rows")
    return frame


def mixed(estimator: Any, *, unknown: str = "ignore", drop: str | None = None) -> Pipeline:
    encode = OneHotEncoder(handle_unknown=unknown, drop=drop)
    return Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        ("scale", StandardScaler(), ["f1", "f2"]),
                        ("minmax", MinMaxScaler(clip=True), ["f3"]),
                        ("encode", encode, ["segment"]),
                    ]
                ),
            ),
            ("model", estimator),
        ]
    )


def numeric(estimator: Any) -> Pipeline:
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), estimator)


Case = tuple[str, Callable[[], Any], str, str, list[str]]
# name, model factory, target column, pyfunc method, model inputs
CASES: list[Case] = [
    ("linreg", lambda: numeric(LinearRegression()), "value", "predict", NUMERIC),
    ("ridge_mixed", lambda: mixed(Ridge(alpha=0.5)), "value", "predict", COLUMNS),
    ("lasso", lambda: numeric(Lasso(alpha=0.05)), "value", "predict", NUMERIC),
    ("enet", lambda: mixed(ElasticNet(alpha=0.05), drop="first"), "value", "predict", COLUMNS),
    ("logit", lambda: mixed(LogisticRegression()), "label", "predict", COLUMNS),
    ("logit_proba", lambda: mixed(LogisticRegression()), "label", "predict_proba", COLUMNS),
    ("multinomial", lambda: mixed(LogisticRegression(C=2.0)), "tier", "predict", COLUMNS),
    ("multi_proba", lambda: mixed(LogisticRegression()), "tier", "predict_proba", COLUMNS),
    ("tree_reg", lambda: mixed(DecisionTreeRegressor(max_depth=6)), "value", "predict", COLUMNS),
    ("tree_clf", lambda: DecisionTreeClassifier(max_depth=5), "tier", "predict", NUMERIC),
    ("tree_proba", lambda: DecisionTreeClassifier(max_depth=4), "label", "predict_proba", NUMERIC),
]
SLOW_CASES: list[Case] = [
    (
        "rf_reg",
        lambda: RandomForestRegressor(6, max_depth=5, random_state=0),
        "value",
        "predict",
        NUMERIC,
    ),
    (
        "rf_clf",
        lambda: mixed(RandomForestClassifier(6, max_depth=4, random_state=0)),
        "tier",
        "predict",
        COLUMNS,
    ),
    (
        "rf_proba",
        lambda: RandomForestClassifier(8, max_depth=4, random_state=0),
        "label",
        "predict_proba",
        NUMERIC,
    ),
    (
        "gb_reg",
        lambda: mixed(GradientBoostingRegressor(n_estimators=20, max_depth=3)),
        "value",
        "predict",
        COLUMNS,
    ),
    (
        "gb_clf",
        lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3),
        "label",
        "predict",
        NUMERIC,
    ),
    (
        "gb_proba",
        lambda: GradientBoostingClassifier(n_estimators=15, max_depth=3),
        "label",
        "predict_proba",
        NUMERIC,
    ),
    (
        "gb_multi",
        lambda: GradientBoostingClassifier(n_estimators=10, max_depth=2),
        "tier",
        "predict",
        NUMERIC,
    ),
    (
        "hgb_reg",
        lambda: HistGradientBoostingRegressor(max_iter=8, max_depth=3),
        "value",
        "predict",
        NUMERIC,
    ),
    (
        "hgb_clf",
        lambda: HistGradientBoostingClassifier(max_iter=10, max_leaf_nodes=8),
        "label",
        "predict_proba",
        NUMERIC,
    ),
    (
        "hgb_multi",
        lambda: HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=6),
        "tier",
        "predict",
        NUMERIC,
    ),
]


def _register_case(
    spark: SparkSession, settings: Settings, train: pd.DataFrame, case: Case, **kwargs: Any
) -> tuple[ModelFunction, Any]:
    name, factory, target, method, columns = case
    model = factory().fit(train[columns], train[target])
    uri = log_and_register(settings, f"compiled_{name}", model, train[columns], method)
    function = register_model_function(
        spark, f"predict_c_{name}", uri, tracking_uri=settings.tracking_uri, **kwargs
    )
    return function, model


def _check_case(spark, settings, train, to_score, case: Case) -> None:
    name, _, _, method, columns = case
    function, model = _register_case(spark, settings, train, case)
    assert function.path == "compiled", function.fallback_reason
    assert function.fallback_reason is None and function.verified_rows > 100
    query = f"SELECT id, predict_c_{name}(struct(*)) AS p FROM compiled_rows"
    actual = run_checked_sql(spark, query)
    plan = actual._jdf.queryExecution().executedPlan().toString()
    assert "ArrowEvalPython" not in plan and "PythonUDF" not in plan
    estimator = model.steps[-1][1] if isinstance(model, Pipeline) else model
    if any(word in type(estimator).__name__ for word in ("Forest", "Boosting")):
        # a method per tree: whole-stage code stays within HotSpot's JIT limit, untouched
        assert largest_generated_method(spark, actual) < JIT_METHOD_BYTES
        assert spark.conf.get(HUGE_METHOD_LIMIT, DEFAULT_LIMIT) == DEFAULT_LIMIT
    expected = expected_frame(model, to_score, method, columns)
    if method == "predict_proba":
        actual = actual.select("id", "p.*")
    rows = [
        tuple(None if pd.isna(v) else (v.item() if isinstance(v, np.generic) else v) for v in row)
        for row in expected.astype(object).itertuples(index=False)
    ]
    want = spark.createDataFrame(rows, actual.schema)
    assert expected.drop(columns="id").notna().any(axis=None)
    assertDataFrameEqual(actual, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.slow
def test_compiled_function_equals_sklearn_on_nulls_unseen_categories_and_extremes(
    spark, settings, train, to_score, case
):
    _check_case(spark, settings, train, to_score, case)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_CASES, ids=[c[0] for c in SLOW_CASES])
def test_compiled_tree_ensemble_equals_sklearn(spark, settings, train, to_score, case):
    _check_case(spark, settings, train, to_score, case)


@pytest.fixture(scope="module")
def logit(spark, settings, train, to_score) -> ModelFunction:
    function, _ = _register_case(spark, settings, train, CASES[4])
    assert function.path == "compiled"
    return function


def test_positional_call_equals_struct_call(spark, logit):
    by_position = run_checked_sql(
        spark, "SELECT id, predict_c_logit(f1, f2, f3, segment) AS p FROM compiled_rows"
    )
    by_struct = spark.sql(
        "SELECT id, predict_c_logit(struct(segment, f3, f2, f1)) AS p FROM compiled_rows"
    )
    assertDataFrameEqual(by_position, by_struct)
    nulls = by_position.filter("p IS NULL").count()
    assert nulls == 3  # the null f1, the NaN f2 and the null segment


def test_swapped_columns_in_a_compiled_call_are_refused_before_any_task(spark, logit):
    with pytest.raises(ModelUsageError, match="argument 1 is column 'f2'"):
        run_checked_sql(spark, "SELECT predict_c_logit(f2, f1, f3, segment) FROM compiled_rows")


def test_compiled_calls_are_counted_and_struct_without_a_field_is_refused(spark, logit):
    from udfs import check_model_calls

    df = spark.sql(
        "SELECT predict_c_logit(f1, f2, f3, segment) AS a, predict_c_logit(struct(*)) AS b "
        "FROM compiled_rows WHERE predict_c_logit(struct(f1, f2, f3, segment)) = 1"
    )
    assert check_model_calls(df, [logit]) == 3
    with pytest.raises(ModelUsageError, match="struct argument has no field 'segment'"):
        run_checked_sql(spark, "SELECT predict_c_logit(struct(f1, f2, f3)) FROM compiled_rows")


def test_dataframe_call_of_a_compiled_function_equals_sql(spark, logit):
    from pyspark.sql import functions as F

    table = spark.table("compiled_rows")
    api = table.select("id", logit(F.struct(*table.columns)).alias("p"))
    sql = spark.sql("SELECT id, predict_c_logit(struct(*)) AS p FROM compiled_rows")
    assertDataFrameEqual(api, sql)


@pytest.fixture(scope="module")
def logit_udf(spark, settings, logit) -> ModelFunction:
    return register_model_function(
        spark,
        "predict_c_logit_u",
        logit.model.model_uri,
        tracking_uri=settings.tracking_uri,
        compiled=False,
    )


@pytest.mark.slow
def test_compiled_false_keeps_the_udf_with_the_same_predictions(spark, logit, logit_udf):
    assert logit_udf.path == "udf" and logit_udf.fallback_reason is None
    # One task: one Python worker imports MLflow and loads the model (later udf queries of
    # the module reuse it), not one per partition at once.
    udf = spark.sql(
        "SELECT /*+ COALESCE(1) */ id, predict_c_logit_u(struct(*)) AS p FROM compiled_rows"
    )
    plan = udf._jdf.queryExecution().executedPlan().toString()
    assert "ArrowEvalPython" in plan
    compiled = spark.sql("SELECT id, predict_c_logit(struct(*)) AS p FROM compiled_rows")
    assertDataFrameEqual(udf, compiled)


@pytest.mark.slow
def test_unsupported_model_falls_back_to_the_udf_with_the_reason(spark, settings, train, caplog):
    case: Case = ("knn", lambda: KNeighborsClassifier(3), "label", "predict", NUMERIC)
    with caplog.at_level("WARNING", logger="udfs.compiled"):
        function, model = _register_case(spark, settings, train, case)
    assert function.path == "udf"
    assert function.fallback_reason == "KNeighborsClassifier is not supported"
    assert "KNeighborsClassifier is not supported" in caplog.text
    complete = train[NUMERIC].head(20)
    df = spark.createDataFrame(complete)
    got = [r["p"] for r in df.select(function("f1", "f2", "f3").alias("p")).collect()]
    assert got == list(model.predict(complete))


def test_verifier_catches_a_translation_that_disagrees(spark, settings, train, monkeypatch):
    # Comparing float64 values with the raw thresholds (ignoring scikit-learn's float32 cast)
    # is a real, tempting mistake: the verifier's probes next to each threshold must catch it.
    monkeypatch.setattr(trees, "float32_threshold", lambda t: t)
    case: Case = ("f64", lambda: DecisionTreeRegressor(max_depth=6), "value", "predict", NUMERIC)
    function, model = _register_case(spark, settings, train, case)
    assert function.path == "udf"
    assert "the compiled expression gives" in function.fallback_reason
    monkeypatch.undo()
    complete = train[NUMERIC].head(20)
    got = [
        r["p"]
        for r in spark.createDataFrame(complete)
        .select(function("f1", "f2", "f3").alias("p"))
        .collect()
    ]
    assert got == list(model.predict(complete))


def test_ensemble_over_the_size_bound_falls_back(spark, settings, train):
    case: Case = (
        "rf_big",
        lambda: RandomForestRegressor(40, random_state=0),
        "value",
        "predict",
        NUMERIC,
    )
    function, _ = _register_case(spark, settings, train, case)
    assert function.path == "udf"
    assert "exceed the compiled size bound" in function.fallback_reason


def test_float32_threshold_reproduces_sklearns_float32_comparison():
    rng = np.random.default_rng(5)
    thresholds = np.concatenate(
        [rng.normal(scale=10, size=300), (rng.normal(size=100) * 1e-40), [0.0, 1e38, -1e38]]
    )
    for t in thresholds:
        t = float((np.float32(t).astype(np.float64) + np.float32(t * 1.0000001)) / 2)
        bound = float32_threshold(t)
        near = [bound, np.nextafter(bound, np.inf), np.nextafter(bound, -np.inf), t]
        near += list(t + rng.normal(scale=abs(t) * 1e-7 + 1e-45, size=20))
        for x in near:
            assert (float(np.float32(x)) <= t) == (x <= bound), (t, x)


def _predictions(spark: SparkSession, function: ModelFunction) -> list[Any]:
    """The function's predictions in SQL over the scoring rows, ordered by id."""
    query = f"SELECT id, {function.name}(struct(*)) AS p FROM compiled_rows ORDER BY id"
    return [row["p"] for row in run_checked_sql(spark, query).collect()]


def _sklearn_predictions(model: Any, to_score: pd.DataFrame) -> list[Any]:
    expected = expected_frame(model, to_score, "predict", NUMERIC).sort_values("id")
    return [None if pd.isna(v) else float(v) for v in expected["p"]]


def test_gradient_boosting_keeps_whole_stage_code_in_jit_sized_methods(
    spark, settings, train, to_score
):
    # 20 trees of depth 3 written as one sum make an 11 kB method (interpreted by HotSpot);
    # with a method per tree the largest is under 3 kB and no session setting changes.
    case: Case = (
        "gb_methods",
        lambda: GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0),
        "value",
        "predict",
        NUMERIC,
    )
    function, model = _register_case(spark, settings, train, case)
    assert function.path == "compiled", function.fallback_reason
    assert function.compiled_sql.count("greatest(") == 20
    scored = spark.sql(f"SELECT {function.name}(f1, f2, f3) AS p FROM compiled_rows")
    plan = scored._jdf.queryExecution().executedPlan().toString()
    assert plan.lstrip().startswith("*"), plan  # whole-stage code generation
    assert "knownnotnull" in plan.lower()  # comparisons skip null tests (guarded rows)
    assert largest_generated_method(spark, scored) < 4000
    assert spark.conf.get(HUGE_METHOD_LIMIT, DEFAULT_LIMIT) == DEFAULT_LIMIT
    got = _predictions(spark, function)
    want = _sklearn_predictions(model, to_score)
    assert [g is None for g in got] == [w is None for w in want]
    assert all(
        g is None or math.isclose(g, w, rel_tol=1e-12) for g, w in zip(got, want, strict=True)
    )


def test_each_tree_is_parsed_once_and_used_twice(spark, train):
    # The trees are shared subexpressions: the skeleton names them, each is parsed on its own
    # (a cold JVM's parser is slow on one long nested text) and the parsed template is the
    # expression the whole text parses to, with the same tree object at both uses.
    from pyspark.sql.types import DoubleType

    from udfs.compiled.registration import parse_expression, parse_template, scala_items
    from udfs.compiled.sql_text import expand
    from udfs.model_function import ModelInput

    model = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0)
    model.fit(train[NUMERIC].fillna(0.0), train["value"])
    inputs = [ModelInput(name, "double", "float64") for name in NUMERIC]
    translation = translate_model(model, "predict", inputs, DoubleType(), None, function_name="f")
    assert len(translation.shared) == 20
    assert translation.sql.count("greatest(") == 20 and " <= " not in translation.sql
    whole = expand(translation.sql, translation.shared)
    assert whole.count("greatest(") == 20 and "__lakegate_tree_" not in whole
    template = parse_template(spark, translation.sql, translation.shared)
    assert template.semanticEquals(parse_expression(spark, whole))
    identity = spark.sparkContext._jvm.java.lang.System.identityHashCode
    pending, pairs = [template], []
    while pending:
        node = pending.pop()
        if (
            node.getClass().getSimpleName() == "UnresolvedFunction"
            and str(node.nameParts().head()) == "greatest"
        ):
            first, second = scala_items(node.arguments())
            pairs.append(identity(first) == identity(second))  # one object, not two copies
            continue
        pending.extend(scala_items(node.children()))
    assert len(pairs) == 20 and all(pairs)


def test_a_tree_too_large_for_one_method_lowers_the_limit_and_says_so(
    spark, settings, train, to_score, caplog
):
    case: Case = (
        "big_tree",
        lambda: DecisionTreeRegressor(max_leaf_nodes=150, random_state=0),
        "value",
        "predict",
        NUMERIC,
    )
    try:
        with caplog.at_level("WARNING", logger="udfs.compiled"):
            function, model = _register_case(spark, settings, train, case)
        assert function.path == "compiled", function.fallback_reason
        assert spark.conf.get(HUGE_METHOD_LIMIT) == "8000"
        assert "for the whole session: its largest tree has 299 nodes" in caplog.text
        got = _predictions(spark, function)
        assert got == _sklearn_predictions(model, to_score)
    finally:
        spark.conf.unset(HUGE_METHOD_LIMIT)


VERDICT_CASE: Case = (
    "cached",
    lambda: GradientBoostingRegressor(n_estimators=6, max_depth=2, random_state=0),
    "value",
    "predict",
    NUMERIC,
)


@pytest.fixture(scope="module")
def cached_model(settings, train) -> tuple[str, Any]:
    """A logged model version (URI) and the fitted model."""
    _, factory, target, method, columns = VERDICT_CASE
    model = factory().fit(train[columns], train[target])
    return log_and_register(settings, "compiled_cached", model, train[columns], method), model


def _register_uri(spark: SparkSession, settings: Settings, name: str, uri: str) -> ModelFunction:
    return register_model_function(spark, name, uri, tracking_uri=settings.tracking_uri)


def _model_never_loaded(*_args: Any) -> Any:
    raise AssertionError("the cached verdict should spare loading the model")


def test_a_verified_model_registers_from_its_cached_verdict_without_loading_it(
    spark, settings, to_score, verdicts, cached_model, monkeypatch, caplog
):
    import udfs.compiled

    uri, model = cached_model
    first = _register_uri(spark, settings, "predict_cached_a", uri)
    assert first.path == "compiled", first.fallback_reason
    stored = list(verdicts.glob("predict_cached_a-*.json"))
    assert len(stored) == 1
    monkeypatch.setattr(udfs.compiled, "_load", _model_never_loaded)
    with caplog.at_level("INFO", logger="udfs.compiled"):
        again = _register_uri(spark, settings, "predict_cached_a", uri)
    assert again.path == "compiled", again.fallback_reason
    assert "cached verdict" in caplog.text
    assert again.compiled_sql == first.compiled_sql
    assert again.verified_rows == first.verified_rows
    assert _predictions(spark, again) == _sklearn_predictions(model, to_score)
    # another function name is another expression (its messages name it): not a hit
    other = _register_uri(spark, settings, "predict_cached_b", uri)
    assert other.path == "udf" and "should spare loading" in other.fallback_reason


def test_a_changed_translator_or_a_broken_verdict_file_proves_the_model_again(
    spark, settings, verdicts, cached_model, monkeypatch
):
    import udfs.compiled

    uri, _ = cached_model
    name = "predict_cached_c"
    assert _register_uri(spark, settings, name, uri).path == "compiled"
    proofs: list[str] = []
    prove = udfs.compiled._prove

    def counted(*args: Any) -> Any:
        proofs.append(args[1].name)
        return prove(*args)

    monkeypatch.setattr(udfs.compiled, "_prove", counted)
    assert _register_uri(spark, settings, name, uri).path == "compiled"
    assert proofs == []  # a hit
    monkeypatch.setattr(verdict_cache, "translator_version", lambda: "a-newer-translator")
    assert _register_uri(spark, settings, name, uri).path == "compiled"
    assert proofs == [name]  # the translator changed: a miss, a second verdict
    assert len(list(verdicts.glob(f"{name}-*.json"))) == 2
    for stored in verdicts.glob(f"{name}-*.json"):
        stored.write_text("{not json")
    assert _register_uri(spark, settings, name, uri).path == "compiled"
    assert proofs == [name, name]  # unreadable: a miss, rewritten
    assert any(json_ok(p) for p in verdicts.glob(f"{name}-*.json") if p.stat().st_size > 10)


def test_a_tampered_cached_verdict_is_not_used_and_the_cache_is_private(
    spark, settings, verdicts, cached_model, monkeypatch
):
    import json
    import stat

    import udfs.compiled

    uri, _ = cached_model
    name = "predict_cached_t"
    genuine = _register_uri(spark, settings, name, uri)
    assert genuine.path == "compiled"
    (stored,) = verdicts.glob(f"{name}-*.json")
    document = json.loads(stored.read_text())
    signed = "verdict" in document
    verdict = json.loads(document["verdict"]) if signed else document
    verdict["sql"] = "CAST(42 AS DOUBLE)"  # SQL someone who can write the folder slipped in
    verdict["shared"] = []
    if signed:
        document["verdict"] = json.dumps(verdict)  # the signature is kept as it was
    stored.write_text(json.dumps(document))
    verdicts.chmod(0o755)
    proofs: list[str] = []
    prove = udfs.compiled._prove

    def counted(*args: Any) -> Any:
        proofs.append(args[1].name)
        return prove(*args)

    monkeypatch.setattr(udfs.compiled, "_prove", counted)
    again = _register_uri(spark, settings, name, uri)
    assert proofs == [name]  # not trusted: proven again
    assert again.compiled_sql == genuine.compiled_sql
    assert "42" not in again.compiled_sql.replace(genuine.compiled_sql, "")
    assert stat.S_IMODE(verdicts.stat().st_mode) == 0o700
    keys = [p for p in verdicts.iterdir() if p.name == verdict_cache.KEY_FILE]
    assert len(keys) == 1 and stat.S_IMODE(keys[0].stat().st_mode) == 0o600


def json_ok(path: Path) -> bool:
    import json

    try:
        json.loads(path.read_text())
    except ValueError:
        return False
    return True


def test_translator_version_follows_the_translator_code(tmp_path):
    sources = verdict_cache.translator_sources()
    names = {p.name for p in sources}
    assert {"trees.py", "verify.py", "verdict_cache.py", "scoring.py"} <= names
    copies = []
    for source in sources:
        copy = tmp_path / source.name
        copy.write_bytes(source.read_bytes())
        copies.append(copy)
    before = verdict_cache.source_digest(copies, ["1.5.2"])
    assert before == verdict_cache.source_digest(sources, ["1.5.2"])
    assert before != verdict_cache.source_digest(copies, ["1.6.0"])
    trees_copy = tmp_path / "trees.py"
    trees_copy.write_text(trees_copy.read_text() + "\n# changed\n")
    assert before != verdict_cache.source_digest(copies, ["1.5.2"])


def test_a_fallback_verdict_is_cached_too_and_the_cache_can_be_off(
    spark, settings, train, verdicts, monkeypatch
):
    import udfs.compiled

    model = KNeighborsClassifier(3).fit(train[NUMERIC], train["label"])
    uri = log_and_register(settings, "compiled_knn_cached", model, train[NUMERIC])
    first = _register_uri(spark, settings, "predict_knn_cached", uri)
    assert first.fallback_reason == "KNeighborsClassifier is not supported"
    monkeypatch.setattr(udfs.compiled, "_load", _model_never_loaded)
    again = _register_uri(spark, settings, "predict_knn_cached", uri)
    assert again.path == "udf"
    assert again.fallback_reason == "KNeighborsClassifier is not supported"
    monkeypatch.setenv(verdict_cache.CACHE_ENV, "off")
    off = _register_uri(spark, settings, "predict_knn_off", uri)
    assert "should spare loading" in off.fallback_reason  # no cache: the model is loaded
    assert not list(verdicts.glob("predict_knn_off-*"))


# Last in the module: the failing query ends the Python worker that held MLflow's imports (a
# worker that raised is not reused), so no later test pays a fresh worker for it.
def test_infinite_input_fails_the_query_as_the_udf_does(spark, logit, logit_udf):
    query = "SELECT {}(CAST('Infinity' AS DOUBLE), 1D, 1D, 'north') AS p"
    with pytest.raises(Exception, match="input 'f1' is infinite"):
        spark.sql(query.format("predict_c_logit")).collect()
    with pytest.raises(Exception, match="infinity"):
        spark.sql(query.format("predict_c_logit_u")).collect()
