"""Batched next-action calls to Triton over gRPC, with retries and a logged fallback.

``TritonPolicy`` is a ``NextActionPolicy`` (``inference.sampling``): the generation loop
calls it once per step with every active episode. It checks readiness up front (server
and model, and that the model's context matches), sends each call with a per-call timeout,
splits batches above the model's ``max_batch_size``, and retries a failed call a bounded
number of times with exponential backoff and full jitter (so many clients that lost the
server together do not return in lockstep). When Triton stays unreachable it raises
``TritonUnavailable``, which names the address, the model and the last cause.

``FallbackPolicy`` wraps a Triton policy and an in-process one: with
``triton.fallback = "in_process"`` (the default) a call that raises ``TritonUnavailable``
is logged as a warning and answered by the in-process model (the checkpoint loaded
locally), and later calls try Triton again first. With ``"fail"`` the error propagates and
the caller (the generation service) decides: retry the request later, nothing lost.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime

import numpy as np

from alphafactory import telemetry
from alphafactory.retry import Backoff, RetriesExhausted, retry
from inference.model import MASKED_LOGIT
from inference.repository import (
    CONTEXT_PARAMETER,
    INPUT_NAMES,
    OUTPUT_NAME,
    TOP_LOGITS,
    TOP_TOKENS,
)

log = logging.getLogger(__name__)
_DATATYPES = {
    "rtg": "FP32",
    "features": "INT64",
    "actions": "INT64",
    "lengths": "INT64",
    "mask": "BOOL",
}


class TritonUnavailable(RuntimeError):
    """Triton could not answer: down, not ready, model missing, or every retry failed."""


class TritonPolicy:
    """Next-action calls to one served model, or one version of it: ``version`` None asks
    for the model's default (newest); otherwise Triton's version ``version`` of it
    (``version_names="native"``, a tritonserver) or the model ``<name>_v<N>`` (the local
    PyTriton server, which serves each version under its own name). ``context`` is the
    model's, for a server whose config cannot say it (PyTriton carries no parameters)."""

    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        version: int | None = None,
        version_names: str = "suffixed",
        context: int | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import tritonclient.grpc as grpcclient

        from inference.repository import versioned_name

        if version_names not in ("suffixed", "native"):
            raise ValueError(f"version_names must be suffixed or native, got {version_names!r}")
        self.url, self.version = url, version
        native = version is not None and version_names == "native"
        self.model_name = (
            model_name if version is None or native else versioned_name(model_name, version)
        )
        self._model_version = str(version) if native else ""
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self._sleep = sleep
        self._client = grpcclient.InferenceServerClient(url=url)
        self._grpc = grpcclient
        self.served_top_k = 0  # the K of the model's top pair; 0: logits only
        self.padded_steps = 0  # a fixed step axis (older exports): calls are padded to it
        described = self._describe(context)
        self.context, self.vocab_size, self.max_batch_size, self.trained_until = described

    def _describe(self, context: int | None) -> tuple[int, int, int, datetime | None]:
        """Readiness check plus the model's shapes and training cutoff (the config
        parameter ``trained_until``, when the exporter wrote it), from Triton's own model
        config. The context is the parameter ``context`` or a fixed step axis' size, else
        the caller's ``context`` (the local PyTriton server carries no parameters: its
        model refuses a call longer than its context itself)."""

        def ask():
            if not self._client.is_server_ready(client_timeout=self.timeout_s):
                raise TritonUnavailable(f"Triton at {self.url} is not ready")
            if not self._client.is_model_ready(
                self.model_name, self._model_version, client_timeout=self.timeout_s
            ):
                raise TritonUnavailable(f"model {self._label()} is not ready at {self.url}")
            return self._client.get_model_config(
                self.model_name, self._model_version, as_json=True, client_timeout=self.timeout_s
            )["config"]

        config = self._with_retries(ask, "readiness check")
        dims = {t["name"]: [int(d) for d in t["dims"]] for t in config["input"]}
        if tuple(dims) != INPUT_NAMES:
            raise TritonUnavailable(
                f"model {self.model_name!r} at {self.url} has inputs {tuple(dims)}, "
                f"expected {INPUT_NAMES}: not an alphafactory generator"
            )
        parameters = config.get("parameters", {})
        steps = dims["rtg"][0]
        self.padded_steps = max(steps, 0)
        declared = parameters.get(CONTEXT_PARAMETER, {}).get("string_value")
        served = int(declared) if declared else self.padded_steps
        if not (served or context):
            raise ValueError(
                f"model {self._label()} at {self.url} does not say its context (a step axis "
                "of any size and no 'context' parameter): pass the checkpoint's context"
            )
        own = parameters.get(f"trained_until.v{self._model_version}")
        stamp = (own or parameters.get("trained_until", {})).get("string_value")
        until = datetime.fromisoformat(stamp) if stamp else None
        outputs = {t["name"]: [int(d) for d in t["dims"]] for t in config.get("output", [])}
        if TOP_LOGITS in outputs and TOP_TOKENS in outputs:
            self.served_top_k = outputs[TOP_LOGITS][0]
        rows = int(config.get("max_batch_size", 0)) or 1
        return served or context, dims["mask"][0], rows, until

    def __call__(self, rtg, features, actions, lengths, mask, *, top_k: int = 0) -> np.ndarray:
        """The masked logits, (rows, vocabulary). With 0 < ``top_k`` <= the served K, Triton
        answers only the top pair and every logit outside it comes back as MASKED_LOGIT, so
        a sampler draws from the top K (at most ``top_k`` of them are asked for)."""
        top = self.served_top_k if 0 < top_k <= self.served_top_k else 0
        if self.padded_steps:
            rtg, features, actions = _pad_steps(
                rtg, features, actions, self.padded_steps, self.vocab_size
            )
        arrays = {
            "rtg": np.ascontiguousarray(rtg, dtype=np.float32),
            "features": np.ascontiguousarray(features, dtype=np.int64),
            "actions": np.ascontiguousarray(actions, dtype=np.int64),
            "lengths": np.ascontiguousarray(lengths, dtype=np.int64).reshape(-1, 1),
            "mask": np.ascontiguousarray(mask, dtype=np.bool_),
        }
        rows = len(arrays["rtg"])
        parts = [
            self._timed_with_retries(
                lambda s=start: self._infer(
                    {k: v[s : s + self.max_batch_size] for k, v in arrays.items()}, top, top_k
                ),
                "inference",
            )
            for start in range(0, rows, self.max_batch_size)
        ]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _infer(self, arrays: dict[str, np.ndarray], served_k: int, top_k: int) -> np.ndarray:
        inputs = []
        for name in INPUT_NAMES:
            tensor = self._grpc.InferInput(name, list(arrays[name].shape), _DATATYPES[name])
            tensor.set_data_from_numpy(arrays[name])
            inputs.append(tensor)
        names = [TOP_LOGITS, TOP_TOKENS] if served_k else [OUTPUT_NAME]
        result = self._client.infer(
            self.model_name,
            inputs,
            model_version=self._model_version,
            outputs=[self._grpc.InferRequestedOutput(name) for name in names],
            client_timeout=self.timeout_s,
        )
        if not served_k:
            return result.as_numpy(OUTPUT_NAME)
        values = result.as_numpy(TOP_LOGITS)[:, :top_k]
        tokens = result.as_numpy(TOP_TOKENS)[:, :top_k].astype(np.int64)
        logits = np.full((len(values), self.vocab_size), MASKED_LOGIT, dtype=np.float32)
        np.put_along_axis(logits, tokens, values, axis=1)
        return logits

    def _timed_with_retries(self, call, what: str):
        with telemetry.TRITON_CALL_SECONDS.time():
            return self._with_retries(call, what)

    def _with_retries(self, call, what: str):
        from tritonclient.utils import InferenceServerException

        def log_retry(error: BaseException, failures: int, delay: float) -> None:
            log.info(
                "triton %s failed (%s); retry %d in %.2f s", what, _reason(error), failures, delay
            )

        try:
            return retry(
                call,
                retry_on=(InferenceServerException, TritonUnavailable, OSError),
                backoff=Backoff(first_s=self.backoff_s, max_s=max(self.backoff_s, 5.0)),
                attempts=self.retries,
                sleep=self._sleep,
                on_retry=log_retry,
            )
        except RetriesExhausted as exhausted:
            raise TritonUnavailable(
                f"Triton at {self.url} (model {self._label()}) failed {what} "
                f"{self.retries} times: {_reason(exhausted.__cause__)}"
            ) from exhausted.__cause__

    def _label(self) -> str:
        version = f" version {self._model_version}" if self._model_version else ""
        return f"{self.model_name!r}{version}"

    def close(self) -> None:
        self._client.close()


def _pad_steps(rtg, features, actions, steps: int, no_action: int):
    """Inputs of ``t`` steps padded to ``steps`` (a model exported with a fixed step axis),
    actions with the "no action yet" token: the network is causal, so what follows the
    step being chosen changes nothing."""
    extra = steps - rtg.shape[1]
    if extra <= 0:
        return rtg, features, actions
    return (
        np.pad(rtg, ((0, 0), (0, extra))),
        np.pad(features, ((0, 0), (0, extra), (0, 0))),
        np.pad(actions, ((0, 0), (0, extra)), constant_values=no_action),
    )


_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception): ")


def _reason(error: Exception | None) -> str:
    """The first line of an error and, where it carries the server's traceback, the last
    exception raised in it (the model's own message)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    raised = [line for line in lines[1:] if _RAISED.match(line)]
    if raised and "Traceback" in lines[0]:
        return f"{lines[0][:300]} ... {raised[-1][:300]}"
    return lines[0][:300]


class FallbackPolicy:
    """Triton first; the in-process model when Triton is unavailable (logged).

    A circuit breaker: after Triton failed, calls go straight to the in-process model for
    ``retry_after_s`` before Triton is tried again, so a generation of many steps does not
    pay the client's retries and backoff on every step while the server is down."""

    def __init__(
        self,
        connect: Callable[[], TritonPolicy],
        local,
        *,
        retry_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect, self.local = connect, local
        self.context = local.context
        self._remote: TritonPolicy | None = None
        self._retry_after_s, self._clock = retry_after_s, clock
        self._open_until = float("-inf")
        self.fallback_calls = 0

    def __call__(self, rtg, features, actions, lengths, mask, *, top_k: int = 0) -> np.ndarray:
        if self._clock() >= self._open_until:
            try:
                if self._remote is None:
                    self._remote = self._connect()
                return self._remote(rtg, features, actions, lengths, mask, top_k=top_k)
            except TritonUnavailable as error:
                self._remote = None  # reconnect when the breaker closes: it may be back
                self._open_until = self._clock() + self._retry_after_s
                log.warning(
                    "Triton unavailable, answering in process for the next %.0f s: %s",
                    self._retry_after_s,
                    error,
                )
        self.fallback_calls += 1
        telemetry.TRITON_FALLBACKS.inc()
        return self.local(rtg, features, actions, lengths, mask, top_k=top_k)


def wait_until_served(
    http_address: str,
    model_name: str,
    version: int,
    *,
    version_names: str,
    admin_key: str | None,
    timeout_s: float,
) -> str:
    """Have Triton serve a newly exported ``version`` and wait until it is ready: with
    ``native`` version names (tritonserver, explicit model control) ask it to load the
    model again, which reads the new config and version; the embedded PyTriton server
    watches its repository. "" once ready; otherwise the last reason it was not."""
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    from inference.repository import versioned_name

    native = version_names == "native"
    name = model_name if native else versioned_name(model_name, version)
    number = str(version) if native else ""
    headers = {"admin-key": admin_key} if admin_key else {}
    client = http.InferenceServerClient(http_address, network_timeout=10.0)
    deadline, reason = time.monotonic() + timeout_s, "not asked yet"
    try:
        if native:
            client.load_model(model_name, headers=headers)
        while time.monotonic() < deadline:
            try:
                if client.is_model_ready(name, number):
                    return ""
                reason = f"{name} {number} not ready".strip()
            except (InferenceServerException, OSError) as error:
                reason = _reason(error)
            time.sleep(0.5)
    except (InferenceServerException, OSError) as error:
        reason = _reason(error)
    finally:
        client.close()
    return reason
