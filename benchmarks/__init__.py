"""Speed benchmarks of the models: ``make bench`` (see ``docs/benchmarks.md``)."""
