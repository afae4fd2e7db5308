"""gunicorn as the HTTP server for every service and for the embedded run.

The app is built in each worker after the fork (``preload_app`` off), so every worker opens its
own store connections, broker connections and threads; the runtime starts when the worker is
ready and stops — gracefully — when gunicorn tells the worker to exit (SIGTERM).
"""
from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication

log = logging.getLogger(__name__)


class ServiceServer(BaseApplication):
    def __init__(self, build_runtime, settings, workers: int, threads: int = 8, on_ready=None):
        self.build_runtime = build_runtime
        self.settings = settings
        self.workers = workers
        self.threads = threads
        self.on_ready = on_ready
        self.runtime = None
        super().__init__()

    def load_config(self):
        cfg = {
            "bind": f"{self.settings.host}:{self.settings.port}",
            "workers": self.workers,
            "threads": self.threads,
            "worker_class": "gthread",
            "graceful_timeout": 25,
            "timeout": 60,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "preload_app": False,
            "post_worker_init": self._post_worker_init,
            "worker_exit": self._worker_exit,
            "when_ready": self._when_ready,
            "child_exit": self._child_exit,
        }
        for key, value in cfg.items():
            self.cfg.set(key, value)

    def load(self):
        from .web import create_app

        self.runtime = self.build_runtime()
        return create_app(self.runtime)

    def _post_worker_init(self, worker):
        self.runtime.start()

    def _worker_exit(self, server, worker):
        if self.runtime is not None:
            self.runtime.stop()

    def _child_exit(self, server, worker):
        import os

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(worker.pid)

    def _when_ready(self, server):
        if self.on_ready:
            self.on_ready()
