"""The BentoML prediction service: every task of the served set, its routes generated from its declaration.

Per served task: POST /<task>/predict, /<task>/predict_batch, /<task>/explain, /<task>/feedback and
/<task>/feedback_batch (request and answer models: bento_service/schemas.py); GET /model; BentoML's /livez,
/readyz, /metrics and the Swagger UI at /. Requests are checked by the guard (bento_service/guard.py) before
they reach these handlers; every prediction is committed to the prediction log before it is answered.

Each task serves a champion and a challenger (bento_service/arms.py: off, shadow or A/B per task); every
logged row carries the model's tag and its arm, and every answer says which model gave it. The models are
loaded in the service's `__init__`, before the worker takes requests; readiness then only waits for the log.

Run from the project root: `bentoml serve` (reads bentofile.yaml) or `make serve`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bento_service import bentoml_patches, http_limits, metrics
from bento_service.arms import CLIENT_KEY_HEADER, ArmChooser, Routing
from bento_service.batching import MicroBatcher
from bento_service.config import settings
from bento_service.explainer import ExplainerBusy, ServedExplainer
from bento_service.guard import RequestGuard
from bento_service.live_drift import DriftWindow, gauge_publisher
from bento_service.live_error import LiveError
from bento_service.native_threads import limit_native_threads, model_executor, native_threads
from bento_service.openapi import (
    explanation_operations,
    feedback_operations,
    openapi_document,
    prediction_operations,
)
from bento_service.predictors import Predictor, load_predictor
from bento_service.schemas import FeedbackAnswer, FeedbackBatchAnswer, TaskApi, task_api
from bento_service.served_set import load_served_set, model_reference
from bento_service.shadow import MAX_SHADOW_BACKLOG, SHADOW_LINGER_S, ShadowQueue
from domain.schema import Kind, load_schema
from prediction_log.feedback import FeedbackItem, FeedbackResult, FeedbackStore, open_feedback_store
from prediction_log.location import LogLocation
from prediction_log.store import ExplanationRow, PredictionRow, utc_now
from prediction_log.writer import LogUnavailable, open_process_log, process_log

logger = logging.getLogger("bentoml.prediction_service")
LOG_RETRY_SECONDS = 2.0
SETTINGS = settings()
SERVED = load_served_set()  # {task: {"champion": tag, "challenger": tag}}, bento_service/served_set.py
APIS: dict[str, TaskApi] = {task: task_api(load_schema(task), SETTINGS.max_batch_records,
                                           SETTINGS.max_feedback_items) for task in SERVED}
# Route -> (task, request model), for the request guard.
ROUTES = {route: (task, model) for task, api in APIS.items() for route, model in api.routes().items()}


@dataclass
class ServedModel:
    task: str
    tag: str
    metadata: dict[str, Any]
    estimator: Any
    batcher: MicroBatcher
    predictor: Predictor
    drift: DriftWindow | None = None
    explainer: ServedExplainer | None = None
    role: str = "champion"  # or "challenger": the arm its answers are logged under

    def describe(self) -> dict[str, Any]:
        explainer = self.explainer.describe() if self.explainer else None
        return {"tag": self.tag, **self.metadata, "predictor": self.predictor.describe(),
                **({"explainer": explainer} if self.role == "champion" else {})}


@dataclass
class ServedTask:
    """A task's champion and challenger in this worker, how requests are routed between them, and their live
    error on the predictions whose true values came back."""

    champion: ServedModel
    challenger: ServedModel | None  # None: the served set names none, the champion serves alone
    chooser: ArmChooser
    live_error: LiveError
    shadow: ShadowQueue | None = None  # the challenger's queue in shadow mode


# What this worker serves, by task; read by the handlers and by GET /model.
LOADED: dict[str, ServedTask] = {}


async def model_info(request: Request) -> JSONResponse:
    """GET /model: each task's champion (its fields at the top, as before challengers), its challenger and the
    routing between them, with training metrics and provenance."""
    if len(LOADED) < len(SERVED):
        return JSONResponse({"error": "models are still loading"}, status_code=503)
    return JSONResponse({task: {**served.champion.describe(), "routing": served.chooser.routing.describe(),
                                "challenger": served.challenger.describe() if served.challenger else None}
                         for task, served in LOADED.items()})


async def docs(request: Request) -> JSONResponse:
    """GET /docs.json: this service's OpenAPI document (in place of BentoML's generic one)."""
    return JSONResponse(_openapi())


_DOCUMENT: list[dict[str, Any]] = []


def _openapi() -> dict[str, Any]:
    if not _DOCUMENT:
        _DOCUMENT.append(openapi_document(list(APIS.values()), SETTINGS))
    return _DOCUMENT[0]


# Mounted before BentoML's own routes, so its /docs.json is ours.
info_app = Starlette(routes=[Route("/model", model_info, methods=["GET"]),
                             Route("/docs.json", docs, methods=["GET"])])


def _unavailable(ctx: bentoml.Context, message: str, request_id: str) -> JSONResponse:
    # BentoML applies ctx.response.status_code to whatever a handler with a ctx returns.
    ctx.response.status_code = 503
    return JSONResponse({"error": message, "request_id": request_id}, status_code=503)


# The container image: BentoML's standard python:3.11-slim base. An unknown `distro` makes BentoML
# skip its `apt-get install build-essential git` step, compilers the service never uses; pinned by
# a container test because it is undocumented. Python packages: bentofile.yaml.
IMAGE = bentoml.images.Image(base_image="python:3.11-slim", distro="prebuilt", python_version="3.11",
                             lock_python_packages=False)


# BentoML records an OpenTelemetry span for every request even with no exporter (its sampler is
# "always recording"), a quarter of a prediction's CPU. Predictions are already recorded in the
# prediction log, so their routes are left out of tracing unless TRACE_PREDICTIONS=1 (set it
# when BENTOML_CONFIG configures a tracing exporter).
TRACING = {} if SETTINGS.trace_predictions else {"excluded_urls": list(ROUTES)}
# For the same reason they are left out of BentoML's access log unless ACCESS_LOG_PREDICTIONS=1: a line per
# request, thousands a second; without it a worker answered 13-19 % more at 32 connections (bench/NOTES.md). BentoML's
# request metrics still count them, and every other route stays in the access log.
if not SETTINGS.access_log_predictions:
    bentoml_patches.skip_access_log(list(ROUTES))


class PredictionService:
    # Per served task, `<task>_champion` and `<task>_challenger`: references to exactly the tags of the served
    # set (never ":latest"), set below so that `bentoml build` packs those models.

    def __init__(self) -> None:
        # Runs on the worker's event loop thread, where small batches are predicted, before the worker takes
        # requests. OpenMP is limited per thread and threadpoolctl only sees libraries already loaded: limited
        # again once the models are.
        limit_native_threads()
        self._loop = asyncio.get_running_loop()
        # Feedback looks rows up and stores true values synchronously, one call at a time, off the event loop.
        self._feedback_executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="feedback")
        self._feedback_store: FeedbackStore | None = None
        self._feedback_backlog = 0  # items handed to the feedback thread and not yet answered
        executor = model_executor()
        for task in SERVED:
            LOADED[task] = _served_task(task, getattr(self, f"{task}_champion"),
                                        getattr(self, f"{task}_challenger", None), executor)
        limit_native_threads()
        for api, threads in native_threads().items():
            metrics.NATIVE_THREADS.labels(api).set(threads)
        # The models and libraries live as long as the process: take them out of the garbage
        # collector's scans, whose full collections otherwise pause the server for tens of milliseconds.
        gc.freeze()
        if not self._open_log():  # the log directory may be a volume that is not there yet: keep trying
            threading.Thread(target=self._open_log_until_done, name="log-opener", daemon=True).start()

    def _open_log(self) -> bool:
        try:
            open_process_log(SETTINGS.log, on_reopen=metrics.log_reopened, on_health=self._log_health,
                             retention_days=SETTINGS.log_retention_days, **_store_options(SETTINGS.log))
        except LogUnavailable as exc:
            logger.warning("%s; retrying in %.0f s", exc, LOG_RETRY_SECONDS)
            return False
        logger.info("prediction log: %s", SETTINGS.log)
        self._log_health(True)
        return True

    def _open_log_until_done(self) -> None:
        while not self._open_log():
            time.sleep(LOG_RETRY_SECONDS)

    def _log_health(self, healthy: bool) -> None:
        """The log became writable (or stopped being): its gauge on /metrics."""
        metrics.LOG_WRITABLE.set(1 if healthy else 0)
        metrics.report_ready(healthy)

    def __is_alive__(self) -> bool:
        """This worker serves every task of the served set; if not, /livez answers 503 and Kubernetes restarts it."""
        return len(LOADED) == len(SERVED)

    def __is_ready__(self) -> bool:
        """The prediction log is writable (its gauge on /metrics): the models are loaded before requests come."""
        log = process_log()
        return metrics.report_ready(log is not None and log.healthy)

    @bentoml.on_shutdown
    def close_log(self) -> None:
        for served in LOADED.values():
            if served.champion.explainer is not None:
                served.champion.explainer.close()
        self._feedback_executor.shutdown(wait=False, cancel_futures=True)
        if self._feedback_store is not None:
            self._feedback_store.close()
        log = process_log()
        if log is not None:
            log.close()

    async def _explain(self, task: str, row: dict[str, Any], ctx: bentoml.Context,
                       respond: Callable[[ServedModel, str, dict[str, Any]], Any]) -> Any:
        """Explain, log (table `explanations`), count; 429 when this worker's explanation slots are full, 503
        when the model has no background or the log cannot be written, as for predictions."""
        request = _Request.of(ctx, task)
        if isinstance(request, JSONResponse):
            return request
        request_id, started, received, entry, log = request
        served = entry.champion  # explanations are of the champion's answers
        if served.explainer is None:
            return _unavailable(ctx, f"{served.tag} carries no explanation background (packaged before stage "
                                     "`explain`): no explanations", request_id)
        try:
            computing = time.perf_counter()
            explanation = await served.explainer.explain(row)
        except ExplainerBusy as exc:
            metrics.EXPLANATIONS_REJECTED.labels(task).inc()
            ctx.response.status_code = 429
            return JSONResponse({"error": f"too many explanations at once: {exc}; retry later",
                                 "request_id": request_id}, status_code=429, headers={"Retry-After": "1"})
        metrics.EXPLANATION_SECONDS.labels(task).observe(time.perf_counter() - computing)
        answer = served.explainer.answer(explanation)
        latency_ms = 1000 * (time.perf_counter() - started)
        try:
            await log.write([ExplanationRow(request_id, task, served.tag, row, answer, latency_ms, received)])
        except LogUnavailable as exc:
            metrics.LOG_WRITE_FAILURES.inc()
            logger.error("answering 503: %s", exc)
            return _unavailable(ctx, "prediction log unavailable; the explanation was not served", request_id)
        metrics.EXPLANATIONS.labels(task, served.tag).inc()
        return respond(served, request_id, answer)

    # -- shared path -----------------------------------------------------------------------
    async def _answer(self, task: str, rows: list[dict[str, Any]], ctx: bentoml.Context,
                      respond: Callable[[ServedModel, str, list[Any]], Any]) -> Any:
        """`respond(served, request_id, predictions as logged)`, or the 503 response of `_predict`."""
        result = await self._predict(task, rows, ctx)
        return result if isinstance(result, JSONResponse) else respond(*result)

    async def _predict(self, task: str, rows: list[dict[str, Any]], ctx: bentoml.Context) -> Any:
        """Predict, log, count. Returns (served, request_id, predictions as logged) or a 503 response: a client
        gets exactly what the prediction log holds (dollars; species and probabilities)."""
        request = _Request.of(ctx, task)
        if isinstance(request, JSONResponse):
            return request
        request_id, started, received, entry, log = request
        arm = entry.chooser.arm(ctx.request.headers.get(CLIENT_KEY_HEADER))
        served = entry.challenger if arm == "challenger" else entry.champion
        values = await served.batcher.predict(rows)
        metrics.REQUEST_ROWS.labels(task).observe(len(rows))
        latency_ms = 1000 * (time.perf_counter() - started)
        logged = [PredictionRow(request_id, task, served.tag, row, _jsonable(task, served, value), latency_ms,
                                received, arm=arm, position=position)
                  for position, (row, value) in enumerate(zip(rows, values, strict=True))]
        try:
            await log.write(logged)
        except LogUnavailable as exc:
            metrics.LOG_WRITE_FAILURES.inc()
            logger.error("answering 503: %s", exc)
            return _unavailable(ctx, "prediction log unavailable; the prediction was not served", request_id)
        predictions = [row.prediction for row in logged]
        metrics.record_predictions(task, served.tag, predictions, arm)
        if served.drift is not None:  # the champion's: drift of inputs and predictions against its training data
            served.drift.add(rows, predictions)
        if entry.shadow is not None and entry.chooser.shadows:
            entry.shadow.submit(rows, request_id, received, started, log)
        return served, request_id, predictions

    # -- feedback ----------------------------------------------------------------------------
    async def _feedback_one(self, task: str, feedback: Any, ctx: bentoml.Context) -> Any:
        results = await self._record_feedback(task, [feedback], ctx)
        if isinstance(results, JSONResponse):
            return results
        status = results[0].status
        answer = FeedbackAnswer(request_id=feedback.request_id, position=feedback.position, status=status)
        if status == "stored":
            return answer
        code, error = ((404, f"no {task} prediction has request_id {feedback.request_id!r} and position "
                             f"{feedback.position}") if status == "unknown" else
                       (409, f"the {task} prediction {feedback.request_id!r} (position {feedback.position}) "
                             "already has its true value; the first one stays"))
        ctx.response.status_code = code
        return JSONResponse({"error": error, "request_id": feedback.request_id, "status": status},
                            status_code=code)

    async def _feedback_many(self, task: str, items: list[Any], ctx: bentoml.Context) -> Any:
        results = await self._record_feedback(task, items, ctx)
        if isinstance(results, JSONResponse):
            return results
        answers = [FeedbackAnswer(request_id=item.request_id, position=item.position, status=result.status)
                   for item, result in zip(items, results, strict=True)]
        counts = {status: sum(a.status == status for a in answers) for status in ("stored", "unknown", "duplicate")}
        return FeedbackBatchAnswer(results=answers, **counts)

    async def _record_feedback(self, task: str, items: list[Any], ctx: bentoml.Context) -> Any:
        """Store true values beside their predictions (prediction_log/feedback.py) and update the live error of
        the models that made them; a list of results, or a 503 response when the log cannot be reached."""
        request = _Request.of(ctx, task)
        if isinstance(request, JSONResponse):
            return request
        entry = request.served
        wanted = [FeedbackItem(item.request_id, item.position, item.actual) for item in items]
        # FEEDBACK_QUEUE: a client flooding the store (each call is one write transaction) gets 503s, retry later,
        # instead of an unbounded queue in front of the feedback thread
        if self._feedback_backlog + len(wanted) > SETTINGS.feedback_queue:
            metrics.FEEDBACK.labels(task, "busy").inc(len(wanted))
            busy = _unavailable(ctx, f"more than {SETTINGS.feedback_queue} feedback items would wait; the feedback "
                                     "was not stored, retry later", request.request_id)
            busy.headers["Retry-After"] = "1"
            return busy
        self._feedback_backlog += len(wanted)  # the event loop's thread only: no lock needed
        try:
            results: list[FeedbackResult] = await self._loop.run_in_executor(
                self._feedback_executor, self._store_feedback, task, wanted)
        except LogUnavailable as exc:
            metrics.LOG_WRITE_FAILURES.inc()
            logger.error("answering 503: %s", exc)
            return _unavailable(ctx, "prediction log unavailable; the feedback was not stored", request.request_id)
        finally:
            self._feedback_backlog -= len(wanted)
        for item, result in zip(wanted, results, strict=True):
            metrics.FEEDBACK.labels(task, result.status).inc()
            if result.status == "stored":
                for prediction in result.predictions:
                    entry.live_error.add(prediction.model, prediction.prediction, item.actual)
        return results

    def _store_feedback(self, task: str, items: list[FeedbackItem]) -> list[FeedbackResult]:
        """In the feedback thread: the store, opened on first use (and again after a failure)."""
        if self._feedback_store is None:
            self._feedback_store = open_feedback_store(SETTINGS.log)
        try:
            return self._feedback_store.record(task, items)
        except LogUnavailable:
            self._feedback_store.close()
            self._feedback_store = None
            raise


class _Request(NamedTuple):
    """What the handling of one request needs: its id and times, the task's served models and the log."""

    request_id: str
    started: float
    received: str
    served: ServedTask
    log: Any

    @classmethod
    def of(cls, ctx: bentoml.Context, task: str) -> _Request | JSONResponse:
        """The request's context, or 503 while the models or the log are not ready."""
        request_id = ctx.request.headers.get("x-request-id", "")
        started = ctx.request.scope.get("state", {}).get("received_at") or time.perf_counter()
        served, log = LOADED.get(task), process_log()
        if served is None or log is None:
            return _unavailable(ctx, "the service is starting: models or prediction log not ready", request_id)
        return cls(request_id, started, utc_now(), served, log)


def _store_options(location: LogLocation) -> dict[str, Any]:
    """The SQLite store's JSON-lines rotation (PostgreSQL keeps no file)."""
    if location.kind != "sqlite":
        return {}
    return {"jsonl_max_bytes": SETTINGS.jsonl_max_bytes, "jsonl_backups": SETTINGS.jsonl_backups}


def _served_model(task: str, model: bentoml.Model, executor: Any, role: str = "champion") -> ServedModel:
    """A packaged model ready to predict: the compiled form if it loads and agrees with scikit-learn, else
    scikit-learn (logged either way), warmed up, behind its own micro-batcher."""
    estimator = bentoml.sklearn.load_model(model)
    metadata = dict(model.info.metadata)
    # classifiers answer with every class's probability, regressors with the value
    predictor = load_predictor(task, estimator, model.custom_objects, metadata)
    # Warm up: the first call pays lazy imports and allocations (seconds, not milliseconds).
    if metadata.get("input_example"):
        predictor.predict(metadata["input_example"][:1])
    batcher = MicroBatcher(predictor.predict, on_call=metrics.BATCH_ROWS.labels(task).observe, executor=executor)
    return ServedModel(task, str(model.tag), metadata, estimator, batcher, predictor, role=role)


def _served_task(task: str, champion: bentoml.Model, challenger: bentoml.Model | None, executor: Any) -> ServedTask:
    """A task's champion (with its live drift window and explainer) and challenger, loaded and routed."""
    routing = SETTINGS.routing(task)
    served = _served_model(task, champion, executor)
    served.drift = _drift_window(task, champion)
    served.explainer = _explainer(task, champion, served.predictor, served.estimator)
    if challenger is None and routing.mode != "off":
        logger.warning("%s_CHALLENGER=%s but there is no challenger: the champion serves alone", task.upper(),
                       routing.mode)
        routing = Routing()
    rival = None if challenger is None else _served_model(task, challenger, executor, "challenger")
    models = {model.tag: model.metadata for model in (served, rival) if model is not None}
    logger.info("%s: champion %s, challenger %s, %s", task, served.tag, rival.tag if rival else "none",
                routing.describe())
    return ServedTask(served, rival, ArmChooser(task, routing, SETTINGS.ab_seed), LiveError(task, models),
                      _shadow_queue(rival, routing, executor))


def _shadow_queue(challenger: ServedModel | None, routing: Routing, executor: Any) -> ShadowQueue | None:
    """The challenger's queue when it shadows the champion (bento_service/shadow.py), else None."""
    if challenger is None or routing.mode != "shadow":
        return None
    task = challenger.task
    return ShadowQueue(task, challenger.tag, challenger.predictor.predict,
                       lambda value: _jsonable(task, challenger, value), SHADOW_LINGER_S, MAX_SHADOW_BACKLOG,
                       executor, metrics.BATCH_ROWS.labels(task).observe)


def _drift_window(task: str, model: bentoml.Model) -> DriftWindow | None:
    """The live drift window over the reference profile packaged with the model (stage `profile`)."""
    profile = model.custom_objects.get("reference")
    if profile is None:
        logger.warning("%s has no reference profile: no live drift scores for %s (re-run `dvc repro`)",
                       model.tag, task)
        return None
    return DriftWindow(profile, gauge_publisher(task, list(profile["features"])))


def _explainer(task: str, model: bentoml.Model, predictor: Predictor, estimator: Any) -> ServedExplainer | None:
    """The task's explainer over the background sample packaged with the model (stage `explain`)."""
    background = model.custom_objects.get("explain_background")
    if background is None:
        logger.warning("%s has no explanation background: POST /%s/explain answers 503 (re-run `dvc repro`)",
                       model.tag, task)
        return None
    classes = [str(c) for c in getattr(estimator, "classes_", [])]
    explainer = ServedExplainer(task, background["records"], predictor, classes, SETTINGS.explain_concurrency,
                                SETTINGS.explain_queue, settings=background.get("explainer"))
    example = model.info.metadata.get("input_example")
    if example:  # warm up, as for predictions: the first call pays allocations
        explainer.explain_now(example[0])
    return explainer


def _jsonable(task: str, served: ServedModel, value: Any) -> Any:
    """A prediction as it is logged and answered: the value (regression), or the class under the declaration's
    answer name with every class's probability (classification)."""
    schema = APIS[task].schema
    if schema.kind is Kind.REGRESSION:
        return float(value)
    classes = [str(c) for c in served.estimator.classes_]
    return {schema.answer: classes[int(np.argmax(value))],
            "probabilities": {c: float(p) for c, p in zip(classes, value, strict=True)}}


def _api(task: str, name: str, handler: Callable[..., Any], request: type, response: type, doc: str) -> Any:
    """`handler` as the BentoML API POST /<task>/<name>: its body parsed into `request` (validated by the guard
    first), its answer documented as `response`."""
    handler.__name__ = handler.__qualname__ = f"{task}_{name}"
    handler.__doc__ = doc
    handler.__annotations__ = {"body": request, "ctx": bentoml.Context, "return": response}
    return bentoml.api(route=f"/{task}/{name}")(handler)


def _task_routes(api: TaskApi) -> dict[str, Any]:
    """The five API methods of one task, and its model references, as attributes of the service class."""
    task, schema = api.task, api.schema
    if schema.kind is Kind.REGRESSION:
        def answer_fields(value: Any) -> dict[str, Any]:
            return {schema.answer: value}

        def explanation_fields(answer: dict[str, Any]) -> dict[str, Any]:
            return answer
    else:
        def answer_fields(value: Any) -> dict[str, Any]:
            return value

        def explanation_fields(answer: dict[str, Any]) -> dict[str, Any]:
            return {**answer, schema.answer: max(answer["prediction"], key=answer["prediction"].get)}

    async def predict(self: PredictionService, body: Any, /, ctx: bentoml.Context) -> Any:
        return await self._answer(task, [body.model_dump(by_alias=True)], ctx, lambda served, request_id, values:
                                  api.prediction(**answer_fields(values[0]), model=served.tag, arm=served.role,
                                                 request_id=request_id))

    async def predict_batch(self: PredictionService, body: Any, /, ctx: bentoml.Context) -> Any:
        return await self._answer(task, [record.model_dump(by_alias=True) for record in body.records], ctx,
                                  lambda served, request_id, values: api.batch_prediction(
                                      predictions=values, model=served.tag, arm=served.role, request_id=request_id))

    async def explain(self: PredictionService, body: Any, /, ctx: bentoml.Context) -> Any:
        return await self._explain(task, body.model_dump(by_alias=True), ctx, lambda served, request_id, answer:
                                   api.explanation(**explanation_fields(answer), model=served.tag,
                                                   request_id=request_id))

    async def feedback(self: PredictionService, body: Any, /, ctx: bentoml.Context) -> Any:
        return await self._feedback_one(task, body, ctx)

    async def feedback_batch(self: PredictionService, body: Any, /, ctx: bentoml.Context) -> Any:
        return await self._feedback_many(task, body.items, ctx)

    summaries = {route: summary for route, _, _, summary in
                 (*prediction_operations(api, SETTINGS), *explanation_operations(api),
                  *feedback_operations(api, SETTINGS))}
    methods = {"predict": (predict, api.record, api.prediction),
               "predict_batch": (predict_batch, api.batch, api.batch_prediction),
               "explain": (explain, api.record, api.explanation),
               "feedback": (feedback, api.feedback, FeedbackAnswer),
               "feedback_batch": (feedback_batch, api.feedback_batch, FeedbackBatchAnswer)}
    attributes = {f"{task}_{name}": _api(task, name, handler, request, response, summaries[f"/{task}/{name}"])
                  for name, (handler, request, response) in methods.items()}
    attributes[f"{task}_champion"] = model_reference(SERVED[task]["champion"])
    if "challenger" in SERVED[task]:
        attributes[f"{task}_challenger"] = model_reference(SERVED[task]["challenger"])
    return attributes


for _api_of_task in APIS.values():
    for _name, _value in _task_routes(_api_of_task).items():
        setattr(PredictionService, _name, _value)

PredictionService = bentoml.asgi_app(info_app, path="/")(bentoml.service(  # type: ignore[misc]
    name="prediction_service", image=IMAGE, workers=SETTINGS.workers, traffic={"timeout": 60},
    tracing=TRACING)(PredictionService))
PredictionService.add_asgi_middleware(RequestGuard, routes=ROUTES)
bentoml_patches.apply()  # BentoML's per-request timeout timers, see bento_service/bentoml_patches.py
bentoml_patches.cache_response_headers()  # two per-request costs of BentoML, paid once per worker instead
bentoml_patches.cache_local_calls()
http_limits.install()  # header size and connection timeouts in uvicorn, see bento_service/http_limits.py
