"""A Python client for a loopwise server's endpoints.

    from loopwise.client import Client

    with Client("http://127.0.0.1:8080", token="lw_...") as client:  # or LOOPWISE_TOKEN in the environment
        answer = client.predict("reviews", ["I love this product!"])
        client.feedback("reviews", [{"inference_id": answer["inference_id"], "label": "1"}])

The token is an API token of an account allowed to invoke endpoints (role ``service`` or ``admin``: an
admin makes one with ``loopwise workforce token create EMAIL --name NAME``).

Errors the server reports raise :class:`loopwise.errors.EndpointError` with the server's message and the
HTTP status in ``status``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import httpx

from loopwise.errors import EndpointError


class ServerError(EndpointError):
    """The server refused or failed a request; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Client:
    def __init__(
        self, url: str = "http://127.0.0.1:8080", *, token: str | None = None, timeout: float = 30.0
    ) -> None:
        import os

        token = token or os.environ.get("LOOPWISE_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers)

    def predict(
        self,
        endpoint: str,
        texts: Sequence[str],
        *,
        target_variant: str | None = None,
        routing_key: str | None = None,
        inference_id: str | None = None,
    ) -> dict[str, Any]:
        """Every class's probability per text, with the variant, model version and inference id."""
        body: dict[str, Any] = {"texts": list(texts)}
        for key, value in (
            ("target_variant", target_variant),
            ("routing_key", routing_key),
            ("inference_id", inference_id),
        ):
            if value is not None:
                body[key] = value
        return self._json(self.http.post(f"/api/v1/endpoints/{endpoint}/predict", json=body))

    def invoke(
        self, endpoint: str, texts: Sequence[str], *, target_variant: str | None = None
    ) -> list[dict[str, Any]]:
        """SageMaker's contract: ``{"probability", "predicted_label"}`` per text (JSON lines on the wire)."""
        import json

        headers = {"Content-Type": "application/jsonlines"}
        if target_variant is not None:
            headers["X-Amzn-SageMaker-Target-Variant"] = target_variant
        lines = "".join(json.dumps({"features": [t]}) + "\n" for t in texts)
        answer = self.http.post(f"/endpoints/{endpoint}/invocations", content=lines, headers=headers)
        self._check(answer)
        return [json.loads(line) for line in answer.text.splitlines() if line.strip()]

    def feedback(
        self, endpoint: str, items: Sequence[dict[str, Any]], *, allow_unknown: bool = False
    ) -> dict[str, Any]:
        """Ground truth (``label``/``labels``) or ``reward`` per ``inference_id``. The server refuses ids
        the endpoint does not know and labels its models do not have (400, naming them) unless
        ``allow_unknown`` (see :mod:`loopwise.serving.known`)."""
        body: Any = {"items": list(items), "allow_unknown": True} if allow_unknown else list(items)
        return self._json(self.http.post(f"/api/v1/endpoints/{endpoint}/feedback", json=body))

    def metrics(self, endpoint: str, period: int = 60, window: int = 3600) -> list[dict[str, Any]]:
        """Per-variant figures by period (SageMaker's names)."""
        answer = self.http.get(
            f"/api/v1/endpoints/{endpoint}/metrics", params={"period": period, "window": window}
        )
        return list(self._json(answer)["rows"])

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, answer: httpx.Response) -> dict[str, Any]:
        self._check(answer)
        return dict(answer.json())

    @staticmethod
    def _check(answer: httpx.Response) -> None:
        if answer.status_code >= 400:
            try:
                message = answer.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = answer.text[:500]
            raise ServerError(f"{answer.status_code}: {message}", answer.status_code)
