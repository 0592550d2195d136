"""The zone engine's parts that have their own module so far (the rest is still in
``alerts/engine.py``): the names of a zone's alerts and of a command's outcomes
(:mod:`alerts.zone.keys`) and the versioned form of the zone state in the table
(:mod:`alerts.zone.codec`). Pure, like all of ``alerts``: no I/O, no clock."""
