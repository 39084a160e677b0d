"""The REST model server: registered MLflow models behind `POST /{model}/{ref}/predict`.

`lakegate serve` runs it (`model_server.server.serve`); `model_server.app.create_app(settings)`
is the ASGI app. It never imports Spark: scoring reuses `udfs.scoring` and the signature is read
by `udfs.signature_frame`; features for `predict-by-key` come from `online_store`.
"""
