"""The zone engine, one module per thing it holds (the front door is :mod:`alerts.engine`):
``step`` (a record in, a ZoneStep out), ``state`` (ZoneState and its figures), ``codec`` (the
state's versioned stored form), ``assessors`` (one per risk), ``alert`` (one alert's state
machine), ``reports``, ``commands``, ``wording`` (zh/en), ``keys`` (alert keys, outcomes),
``forecast``, ``peaks``, ``times``. Pure, like all of ``alerts``: no I/O, no clock."""
