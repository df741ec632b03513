"""The promote handlers: the browser's JupyterLab extension calls these, they call Cellar.

The browser never sees a Cellar token. Each POST needs the server's XSRF token (jupyter-server
checks it for cookie-authenticated requests; JupyterLab's ServerConnection sends it), and only
the server's owner gets past the hub's authentication at all. The handler forwards to Cellar
with the kernel token of the team the request names: a team the user is not in has no token
here, and Cellar checks the token's team and scopes again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote, urlencode

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import IOLoop

from cellar_notebooks.tokens import CHECK_SECONDS

MAX_BODY = 10 * 1024 * 1024


class CellarHandler(APIHandler):
    @property
    def keeper(self):
        return self.settings["cellar_token_keeper"]

    def fail(self, status: int, code: str, message: str) -> None:
        self.set_status(status)
        self.finish(json.dumps({"error": {"code": code, "message": message}}))

    async def team_token(self, team: str) -> str | None:
        """The kernel token for `team`; a team joined since the last renewal triggers one (once per check)."""
        token = self.keeper.token_for(team)
        if token is None and self.keeper.age_seconds() > CHECK_SECONDS:
            await self.keeper.renew_now()
            token = self.keeper.token_for(team)
        if token is None:
            known = sorted((self.keeper.read() or {}).get("tokens") or {})
            self.fail(
                403,
                "not_a_member",
                f"You have no Cellar token for team '{team}'"
                + (f"; your teams: {', '.join(known)}." if known else "; the server has not received its tokens yet."),
            )
        return token

    async def forward(self, method: str, path: str, token: str, body: dict | None = None) -> None:
        url = f"{self.keeper.url}/api/v1/{path}"
        request = HTTPRequest(
            url,
            method=method,
            body=json.dumps(body) if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            request_timeout=120,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (HTTPClientError, OSError) as exc:
            self.fail(502, "cellar_unreachable", f"Cellar at {self.keeper.url} did not answer: {exc}")
            return
        self.set_status(response.code)
        self.finish(response.body or b"{}")

    def json_body(self) -> dict | None:
        if len(self.request.body or b"") > MAX_BODY:
            self.fail(413, "request_too_large", "The notebook is larger than 10 MiB.")
            return None
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            self.fail(400, "malformed_json", "The request body is not JSON.")
            return None
        if not isinstance(body, dict) or not isinstance(body.get("team"), str) or not body["team"]:
            self.fail(400, "team_required", "Name the team to promote into ('team').")
            return None
        return body


class ContextHandler(CellarHandler):
    """Which teams this user can promote into (the token file's teams) and where Cellar is."""

    @tornado.web.authenticated
    async def get(self) -> None:
        data = self.keeper.read()
        if data is None:
            await self.keeper.renew_if_due()
            data = self.keeper.read() or {}
        teams = sorted(data.get("tokens") or {})
        self.finish(
            json.dumps(
                {
                    "username": data.get("username", ""),
                    "teams": teams,
                    "team": data.get("team") or (teams[0] if teams else ""),
                    "cellar_url": os.environ.get("CELLAR_PUBLIC_URL") or self.keeper.url,
                    "expires_at": data.get("expires_at"),
                }
            )
        )


class _PromoteBase(CellarHandler):
    endpoint = ""

    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        if body is None:
            return
        token = await self.team_token(body["team"])
        if token is None:
            return
        payload = {
            "notebook": body.get("notebook"),
            "cells": body.get("cells"),
            "pipeline": body.get("pipeline") or "",
            "notebook_name": body.get("notebook_name") or "",
            "production": bool(body.get("production")),
            "run_now": bool(body.get("run_now")),
            "parameters": body.get("parameters") or {},
        }
        await self.forward("POST", f"teams/{quote(body['team'], safe='')}/workspaces/{self.endpoint}/", token, payload)


class PreviewHandler(_PromoteBase):
    endpoint = "promote-preview"


class PromoteHandler(_PromoteBase):
    endpoint = "promote"


class PullHandler(CellarHandler):
    """ "Open in notebook" from a failed task: `cellar pull` into pulled/ here, then open it in JupyterLab.

    A GET (it is a link from Cellar's run page) that only writes the reproducing notebook into the
    user's own server, from data their token may read; the same request twice writes the same file.
    """

    @tornado.web.authenticated
    async def get(self) -> None:
        team, pipeline = self.get_argument("team", ""), self.get_argument("pipeline", "")
        step, run = self.get_argument("step", ""), self.get_argument("run", "")
        index = self.get_argument("index", "")
        if not (team and pipeline and step and run.isdigit()) or (index and not index.isdigit()):
            self.fail(400, "bad_request", "Give team, pipeline, run (a number), step and, for a foreach, index.")
            return
        token = await self.team_token(team)
        if token is None:
            return
        root = Path(self.settings.get("server_root_dir") or os.getcwd()).expanduser()
        try:
            name = await IOLoop.current().run_in_executor(
                None, _pull, self.keeper.url, token, team, pipeline, int(run), step, int(index) if index else None, root
            )
        except Exception as exc:  # the SDK's TaskNotFound, CellarAPIError, a store error: say it, as JSON
            self.fail(404 if exc.__class__.__name__ == "TaskNotFound" else 502, "pull_failed", str(exc))
            return
        self.redirect(url_path_join(self.base_url, "lab", "tree", PULLED, name))


PULLED = "pulled"


def _pull(url: str, token: str, team: str, pipeline: str, run: int, step: str, index: int | None, root: Path) -> str:
    from cellar.client import Client
    from cellar.pipelines.load_task import TaskReader
    from cellar.pipelines.pull import default_path, write_notebook

    task = TaskReader(Client(url, token), team).load(pipeline, run, step, index)
    folder = root / PULLED
    folder.mkdir(parents=True, exist_ok=True)
    name = default_path(task)
    write_notebook(task, folder / name)
    return name


class RunsHandler(CellarHandler):
    """This notebook's pipeline's recent runs, for the side panel."""

    @tornado.web.authenticated
    async def get(self) -> None:
        team, pipeline = self.get_argument("team", ""), self.get_argument("pipeline", "")
        if not team or not pipeline:
            self.fail(400, "team_required", "Name the team and the pipeline.")
            return
        token = await self.team_token(team)
        if token is None:
            return
        query = urlencode({"page_size": 10})
        path = f"teams/{quote(team, safe='')}/pipelines/{quote(pipeline, safe='')}/runs/?{query}"
        await self.forward("GET", path, token)
