"""The request pipeline: one module per stage, each knowing only the small interface of ``base.py``.

- ``base.py``: :class:`Stage` (``before`` and ``after`` hooks) and the factory signature.
- The request's own stages, which the operation endpoint (``app.py``) calls in this order:
  ``auth.py`` (the key), ``params.py`` (query, header and path parameters), ``body.py`` (the body,
  within its size limit), ``validation.py`` (the body against the spec's schema).
- The cross-cutting stages around the handler: ``access.py`` (scopes, tiers), ``scripted.py``
  (control-API scripts), ``faults.py``, ``limits.py`` (rate limits), ``latency.py`` (GPU latency).
- ``pipeline.py``: their order, written once, and :func:`~mock_server.stages.pipeline.build`.

Nothing here imports ``pipeline`` but the app, so the stages import no circle.
"""
