"""A small HTTP client of the control-plane API (used by the CLI; the agent's tools reuse it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import connect_sse


class ApiError(Exception):
    """The control plane answered with a problem document."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class ControlPlaneClient:
    """Calls API v1 with one bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        request_id: str | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}
        if request_id:
            self._headers["X-Request-ID"] = request_id
        # A shared pool (the chatbot's, one per process) saves a TLS context and a connection
        # per call; the token still travels per request, never on the shared client.
        self._owns_http = http is None
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        """Release the connection pool (unless it is shared)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> ControlPlaneClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request; return the JSON body, or raise ApiError with the problem's detail."""
        response = self._http.request(method, path, headers=self._headers, **kwargs)
        if response.status_code >= 400:
            try:
                detail = str(response.json().get("detail", response.text))
            except ValueError:
                detail = response.text
            raise ApiError(response.status_code, detail)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def events(self, operation_id: str) -> Iterator[dict[str, Any]]:
        """Follow an operation's Server-Sent Events until it ends."""
        with connect_sse(
            self._http,
            "GET",
            f"/v1/operations/{operation_id}/events",
            headers=self._headers,
            timeout=httpx.Timeout(10, read=60),  # the server pings every 15 s
        ) as source:
            if source.response.status_code >= 400:
                source.response.read()
                raise ApiError(source.response.status_code, source.response.text)
            for sse in source.iter_sse():
                if sse.data:
                    yield json.loads(sse.data)
