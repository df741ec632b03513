"""The model server (`cellar-worker serve`): answers POST /serve/<team>/<deployment>/predict.

It holds no database credentials and imports no Django (ARCHITECTURE.md, "Trust boundary"):
routes come from the control plane over HTTP (serve credential, polled with an ETag), model
files straight from the artifact store, and prediction logs go back through an outbox.

    config.py     settings from the environment
    control.py    the control-plane client (routes, health, outbox posts)
    outbox.py     buffered, batched, asynchronous record sender
    loader.py     model files from the artifact store → Predictor (fast input path)
    routing.py    one deployment's live table: versions, weights, keys, extensions
    sync.py       polls routes, loads versions before switching, reports health
    stats.py      per-minute request/latency/error counters and input sampling
    app.py        the ASGI app (predict, health probes)
    abtest.py     A/B assignment (owned by the A/B-test app's helper)
"""
