"""Ready-made adapters for optional dependencies: ``jobqueue.contrib.otel`` (extra
``jobqueue[otel]``) and ``jobqueue.contrib.prometheus`` (extra ``jobqueue[prometheus]``).
Nothing here is imported by jobqueue itself."""
