"""``datasetgan annotate``: a local web annotator for generated samples.

- ``config``: ``AnnotateConfig``.
- ``store``: the samples and labels folders (``LabelStore``): the only files it touches.
- ``regions``: a sample's parts, clusters of the generator's per-pixel features (region fill).
- ``assist``: the background interpreter (``Assistant``): suggestions and which sample is next.
- ``server``: the Starlette app, the page (``static/``) and the HTTP API.
- ``cli``: the ``annotate`` command.
"""
