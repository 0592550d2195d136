"""The composition root: the only package that wires the processes together.

``puhui`` (:mod:`entrypoints.cli`) reads the settings once and starts one process: the worker
(:mod:`streams`), the API (:mod:`api`), the notifier (:mod:`notifier`), the simulator, the
bench, or all of them (``puhui up``). :mod:`entrypoints.apps` builds the applications from
their independent packages (the API with the notifier inside it, on a single machine).
"""
