"""Tools around the pipeline, not part of any long-running process: the simulator
(``puhui simulate``: scenarios generated and produced to the broker) and the bench
(``puhui bench``: workloads, the processes it starts, what it measures, its report)."""
