"""Cellar's jupyter-server extension: the promote handlers and the kernel token file.

Enabled per server by the hub (`--ServerApp.jpserver_extensions={'cellar_notebooks': True}`) or,
in an image, by etc/jupyter/jupyter_server_config.d/cellar_notebooks.json. It depends only on
the `cellar` SDK's token-file format (ARCHITECTURE.md, "Dependency direction").
"""

from __future__ import annotations

from jupyter_server.utils import url_path_join

from cellar_notebooks.handlers import ContextHandler, PreviewHandler, PromoteHandler, PullHandler, RunsHandler
from cellar_notebooks.tokens import KernelTokenKeeper

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    return [{"module": "cellar_notebooks"}]


def _load_jupyter_server_extension(server_app) -> None:
    web_app = server_app.web_app
    keeper = KernelTokenKeeper.from_environment(log=server_app.log)
    web_app.settings["cellar_token_keeper"] = keeper
    base = url_path_join(web_app.settings["base_url"], "cellar")
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "context"), ContextHandler),
            (url_path_join(base, "preview"), PreviewHandler),
            (url_path_join(base, "promote"), PromoteHandler),
            (url_path_join(base, "runs"), RunsHandler),
            (url_path_join(base, "pull"), PullHandler),
        ],
    )
    keeper.start()
    server_app.log.info("cellar_notebooks: promote handlers at %s; kernel tokens in %s", base, keeper.path)
