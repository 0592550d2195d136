"""The notifier: alert records in, signed webhooks out (:mod:`notifier.service`).

A process of its own (``puhui notifier``, :mod:`notifier.process`), or, on a single machine,
run inside ``puhui api`` (``PUHUI_NOTIFIER_IN_API``, the default): the composition root
(:mod:`entrypoints.apps`) hands it to the API as a background companion; the API itself does
not import this package.
"""
