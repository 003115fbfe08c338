"""Coverage-guided fuzzing of streamdrift's inputs: messages, config files, baseline files.

``targets`` holds the fuzz targets (one function of bytes each) and their seed inputs;
``python -m tests.fuzz TARGET [libFuzzer flags]`` runs one under atheris, with what
``harness`` adds (faults recorded, a mutation of its own); ``libfuzzer`` runs that process
and reads its results. ``corpus/<target>/`` keeps the faulty inputs found. docs/testing.md
says how to use them.
"""
